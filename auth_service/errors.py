"""auth_service's own error reasons, beside the kit's transport reasons (shared.errors.Reason).

Callers see the name on the wire (`x-error-reason`) and need not import this: the gRPC
code says the rest (a 401, the caller's own fault).
"""

from __future__ import annotations

import grpc

from shared.errors import declare_reason

TOKEN_INVALID = declare_reason("TOKEN_INVALID", grpc.StatusCode.UNAUTHENTICATED)
TOKEN_EXPIRED = declare_reason("TOKEN_EXPIRED", grpc.StatusCode.UNAUTHENTICATED)
TOKEN_REVOKED = declare_reason("TOKEN_REVOKED", grpc.StatusCode.UNAUTHENTICATED)
