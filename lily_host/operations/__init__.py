"""What operators see of a running Lily: the webhook log and its console index, delivery ids and
their effects, finished tasks' runs, the audit log, worker heartbeats, integration and per-tenant
health, and time parsing for their filters. Below ``sms`` and ``runtime`` (which record into it),
above ``queue`` and ``tenants``; nothing here imports the Host: collaborators are passed in."""
