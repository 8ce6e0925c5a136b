"""Scheduled jobs that run on one replica of a service: cron or interval, leader-elected.

scheduler = Scheduler(settings.service_name, etcd_endpoint, tracing=tracing)
scheduler.add(Job("cleanup", cron="*/5 * * * *", run=cleanup))
await scheduler.start()   # ... await scheduler.stop()
"""

from shared.jobs.clock import Clock, ManualClock, SystemClock
from shared.jobs.job import Cron, Every, Job, JobFunction, Schedule, Tick
from shared.jobs.ledger import EtcdLedger, Ledger, MemoryLedger
from shared.jobs.metrics import JobMetrics
from shared.jobs.runner import JobRunner
from shared.jobs.scheduler import Scheduler

__all__ = [
    "Clock",
    "Cron",
    "EtcdLedger",
    "Every",
    "Job",
    "JobFunction",
    "JobMetrics",
    "JobRunner",
    "Ledger",
    "ManualClock",
    "MemoryLedger",
    "Schedule",
    "Scheduler",
    "SystemClock",
    "Tick",
]
