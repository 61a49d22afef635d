"""The ASGI entry point hypercorn imports in each worker process (`lily serve`)."""

from lily_host.web.app import create_app

app = create_app()
