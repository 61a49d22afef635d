"""The tenant API of completed jobs: ``POST /api/jobs/<job_id>/complete``, ``/cancel``, ``GET /api/jobs/<job_id>``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from quart import Blueprint, g, jsonify, request

from lily_host.builtins.review_requests import (
    cancel_job,
    complete_job,
)
from lily_host.plugin_api.json_problem import problem
from lily_host.plugin_api.route_auth import require_tenant
from lily_host.plugin_api.untrusted import UntrustedInput, loads_json
from lily_host.records.job_store import (
    INVALID_JOB_ID,
    JOB_ID,
    JobCompletion,
    JobStore,
    validation_message,
)
from lily_host.runtime.host import current_host

if TYPE_CHECKING:
    pass


# --- HTTP API --------------------------------------------------------------------------------------------

jobs_api = Blueprint("lily_jobs", __name__)


async def _json_body() -> dict[str, Any] | Any:
    if not request.is_json:
        return problem(415, "unsupported_media_type", "send the job as JSON (Content-Type: application/json)")
    try:
        body = loads_json(await request.get_data(as_text=False))
    except UntrustedInput as error:
        return problem(400, "invalid", str(error))
    if not isinstance(body, dict):
        return problem(400, "invalid", "the body must be a JSON object")
    return body


@jobs_api.post("/<job_id>/complete")
@require_tenant
async def complete(job_id: str) -> Any:
    if not JOB_ID.fullmatch(job_id):
        return problem(400, "invalid", INVALID_JOB_ID)
    body = await _json_body()
    if not isinstance(body, dict):
        return body
    try:
        details = JobCompletion.model_validate(body)
    except ValidationError as error:
        return problem(400, "invalid", validation_message(error))
    result = await complete_job(current_host(), g.tenant, job_id, details)
    return jsonify(result), 200 if result["duplicate"] else 202


@jobs_api.post("/<job_id>/cancel")
@require_tenant
async def cancel(job_id: str) -> Any:
    if not JOB_ID.fullmatch(job_id):
        return problem(400, "invalid", INVALID_JOB_ID)
    result = await cancel_job(current_host(), g.tenant, job_id)
    if result is None:
        return problem(404, "not_found", f"no job {job_id!r} for this tenant")
    return jsonify(result)


@jobs_api.get("/<job_id>")
@require_tenant
async def show(job_id: str) -> Any:
    job = (
        await JobStore(current_host().redis, current_host().pii).get(g.tenant.id, job_id)
        if JOB_ID.fullmatch(job_id)
        else None
    )
    if job is None:
        return problem(404, "not_found", f"no job {job_id!r} for this tenant")
    return jsonify(job.public_view())
