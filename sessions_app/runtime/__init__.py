"""What agent runtimes use: the HTTP/websocket client, the command socket they connect to, and
the demo runtime that plays sessions through the public API."""
