"""S3 for Lily: customer photos for quotes, uploaded straight from the browser or by MMS.

The plugin (``lily_s3.plugin``) registers the tenant upload API, the MMS media and retention
tasks, the bucket health check and the ``storage`` capability.
"""

from __future__ import annotations

__version__ = "0.1.0"
