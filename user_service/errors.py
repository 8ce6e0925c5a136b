"""user_service's own error reasons, beside the kit's transport reasons (shared.errors.Reason).

Callers see the name on the wire (`x-error-reason`) and need not import this: the gRPC
code says the rest (a 401, the caller's own fault).
"""

from __future__ import annotations

import grpc

from shared.errors import declare_reason

# A wrong password or an unknown user: deliberately the same answer.
INVALID_CREDENTIALS = declare_reason("INVALID_CREDENTIALS", grpc.StatusCode.UNAUTHENTICATED)
