// /docs: Swagger UI over this server's OpenAPI description (vendored, no CDN)
window.ui = SwaggerUIBundle({ url: "/openapi-3.0.json", dom_id: "#swagger-ui" });
