"""The web app of the browser test: a page on its own origin and the token
endpoint it calls, as a site in front of sse-kafka would have them.

    token_server.py KEYS_DIR TTL PROXY_URL

Serves on 127.0.0.2 (another origin than the proxy's 127.0.0.1), prints
its port, then answers until killed:

- GET /          the page (tests/clients/reauth.html) with PROXY_URL in it
- GET /token     a fresh ES256 token (key ec1 of KEYS_DIR, from mint.py
                 keys) that expires TTL seconds from now; counted
- GET /count     how many tokens it gave out
"""

import http.server
import pathlib
import sys
import threading
import time

import jwt

keys_dir, ttl, proxy_url = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
key = (keys_dir / "ec1.pem").read_bytes()
page = (pathlib.Path(__file__).parent / "reauth.html").read_text()
page = page.replace("PROXY_URL", proxy_url)
issued = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global issued
        if self.path == "/":
            self.answer("text/html", page)
        elif self.path == "/token":
            with lock:
                issued += 1
                n = issued
            claims = {
                "iss": "https://auth.test/",
                "aud": "sse-kafka",
                "sub": f"browser-{n}",
                "exp": int(time.time()) + ttl,
            }
            token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "ec1"})
            self.answer("text/plain", token)
        elif self.path == "/count":
            self.answer("text/plain", str(issued))
        else:
            self.send_error(404)

    def answer(self, kind, body):
        data = body.encode()
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.send_header("cache-control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
