"""``/docs``: Swagger UI on the service's OpenAPI, from our own ``/static/vendor/swagger-ui-dist/`` (no CDN).

FastAPI's page (``get_swagger_ui_html``) with self-hosted assets; its start-up script is inline, so it gets the
response's CSP nonce. The online validator badge is off: it would send the OpenAPI's address to swagger.io.
ReDoc is not served: one documentation page is enough, and ReDoc's would need fonts and scripts from elsewhere.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from geo_service.api.security_headers import csp_nonce

router = APIRouter(include_in_schema=False)
DOCS_PATH = "/docs"


@router.get(DOCS_PATH, name="swagger_ui_html")
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    assets = f"{root}/static/vendor/swagger-ui-dist"
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}", title=f"{request.app.title} — API",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js", swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon-32x32.png", swagger_ui_parameters={"validatorUrl": None})
    # The page's only inline script is the bare "<script>" (the bundle's has a src).
    html = bytes(page.body).decode().replace("<script>", f'<script nonce="{csp_nonce(request)}">')
    return HTMLResponse(html.replace("<html>", '<html lang="fr">', 1))
