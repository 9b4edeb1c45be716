"""Keep NNI's manager off the network: loopback by default, a token to expose it.

NNI 3.0's manager (Node.js, ``nni_node/rest_server``) serves its REST API and the web UI with
``app.listen(port)``, i.e. on every interface and without authentication: whoever reaches the
port reads and controls the experiment (``PUT /api/v1/nni/experiment``, trial logs, stop).
Plain ``nnictl create`` keeps doing that; every experiment *our* tools start does not:

* :func:`loopback_env` / :func:`loopback`: the environment under which NNI's manager binds to
  127.0.0.1 only. It adds ``--require nni_nasext/loopback.js`` to ``NODE_OPTIONS`` (a preload
  that gives every TCP listener without an explicit host the loopback address); nothing of
  NNI's installed files changes. ``nasext run`` / ``quickstart`` create experiments under it;
  a Python launcher (``NasExperiment.run``) can run under ``with netguard.loopback():``.
* :class:`TokenProxy`: the opt-in way out (``nasext run --expose``): a small reverse proxy on
  all interfaces (or a given one) that forwards to the loopback manager only requests that
  carry the token, as ``?token=...`` (the web UI link: the proxy then sets an HttpOnly cookie
  so the UI's own requests pass), the cookie, or ``Authorization: Bearer ...``. Anything else
  gets ``401``. Tokens are compared in constant time (``hmac.compare_digest``).

What this does not cover: NNI's remote / cluster training services, whose trials on other
machines must reach the manager (use ``--expose`` there, or an SSH tunnel).
"""
from __future__ import annotations

import contextlib
import hmac
import http.client
import http.server
import os
import secrets
import threading
import urllib.parse
from pathlib import Path
from typing import Dict, Iterator, Mapping, Optional, Sequence

__all__ = ['PRELOAD', 'TokenProxy', 'loopback', 'loopback_env']

#: the Node.js preload that binds host-less listeners to ``NASEXT_BIND_HOST`` (127.0.0.1)
PRELOAD = Path(__file__).with_name('loopback.js')
COOKIE = 'nasext_token'
#: hop-by-hop headers (RFC 7230 6.1): not forwarded by a proxy
HOP = {'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailers',
       'transfer-encoding', 'upgrade'}


def _require_option() -> str:
    path = str(PRELOAD.resolve())
    if not PRELOAD.exists():
        raise FileNotFoundError(f'{path} is missing: the package is not installed completely')
    return f'--require={path}' if ' ' not in path else f'--require="{path}"'


def loopback_env(env: Optional[Mapping[str, str]] = None, host: str = '127.0.0.1',
                 also: Sequence[str] = ()) -> Dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) under which NNI's manager listens on ``host``
    only: ``NODE_OPTIONS`` gains the preload (kept once), ``NASEXT_BIND_HOST`` is ``host``.
    ``also``: addresses where the machines of a remote or cluster training service reach the
    manager (its ``nniManagerIp``); the manager is forwarded there too, on the same port
    (``NASEXT_ALSO_BIND``), and nowhere else."""
    out = dict(os.environ if env is None else env)
    opt = _require_option()
    current = out.get('NODE_OPTIONS', '')
    if opt not in current:
        out['NODE_OPTIONS'] = f'{current} {opt}'.strip()
    out['NASEXT_BIND_HOST'] = host
    if also:
        out['NASEXT_ALSO_BIND'] = ','.join(also)
    else:
        out.pop('NASEXT_ALSO_BIND', None)
    return out


@contextlib.contextmanager
def loopback(host: str = '127.0.0.1') -> Iterator[None]:
    """``os.environ`` set by :func:`loopback_env` inside the block (for launchers in this
    process, e.g. ``with loopback(): experiment.run(port)``), restored afterwards."""
    keys = ('NODE_OPTIONS', 'NASEXT_BIND_HOST', 'NASEXT_ALSO_BIND')
    saved = {k: os.environ.get(k) for k in keys}
    new = loopback_env(host=host)
    try:
        for k in keys:
            if k in new:
                os.environ[k] = new[k]
            else:
                os.environ.pop(k, None)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Handler(http.server.BaseHTTPRequestHandler):
    server: '_Server'
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args) -> None:  # quiet: the manager logs the requests
        pass

    def _token_from_request(self) -> tuple:
        """(token offered or None, where it came from, the path without a ``token`` query)."""
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        offered = [v for k, v in query if k == 'token']
        clean = urllib.parse.urlunsplit(('', '', parts.path, urllib.parse.urlencode(
            [(k, v) for k, v in query if k != 'token']), parts.fragment))
        if offered:
            return offered[-1], 'query', clean
        auth = self.headers.get('Authorization', '')
        if auth.lower().startswith('bearer '):
            return auth[7:].strip(), 'header', clean
        for chunk in self.headers.get('Cookie', '').split(';'):
            name, _, value = chunk.strip().partition('=')
            if name == COOKIE:
                return value, 'cookie', clean
        return None, None, clean

    def _handle(self) -> None:
        offered, source, path = self._token_from_request()
        if offered is None or not hmac.compare_digest(offered.encode(), self.server.token.encode()):
            body = b'401: this NNI experiment needs its token (?token=... from the launcher\'s output)\n'
            self.send_response(401)
            self.send_header('Content-Type', 'text/plain; charset=utf-8')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length > 0 else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in HOP and k.lower() not in ('host', 'authorization', 'cookie')}
        conn = http.client.HTTPConnection(self.server.target_host, self.server.target_port, timeout=60)
        try:
            conn.request(self.command, path or '/', body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as err:
            conn.close()
            msg = f'502: the NNI manager on port {self.server.target_port} does not answer ({err})\n'.encode()
            self.send_response(502)
            self.send_header('Content-Length', str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        conn.close()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != 'content-length':
                self.send_header(k, v)
        if source == 'query':  # the web UI's later requests carry no query: give it the cookie
            self.send_header('Set-Cookie', f'{COOKIE}={self.server.token}; HttpOnly; SameSite=Strict; Path=/')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    token: str
    target_host: str
    target_port: int


class TokenProxy:
    """A token-checking reverse proxy from ``host:port`` (port 0: a free one) to the manager
    on ``127.0.0.1:target_port``. ``start()`` serves in a daemon thread; ``stop()`` ends it;
    ``url`` is the web UI's address with the token (``host`` 0.0.0.0 shows as this machine's
    name)."""

    def __init__(self, target_port: int, *, host: str = '0.0.0.0', port: int = 0, token: Optional[str] = None,
                 target_host: str = '127.0.0.1'):
        if not 0 < int(target_port) < 65536:
            raise ValueError(f'target_port must be a TCP port, got {target_port}')
        self.token = token or secrets.token_urlsafe(24)
        if len(self.token) < 16:
            raise ValueError('a token must have at least 16 characters')
        self._server = _Server((host, int(port)), _Handler)
        self._server.token, self._server.target_host, self._server.target_port = self.token, target_host, int(target_port)
        self.host, self.port = host, self._server.server_address[1]
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        import socket
        shown = socket.gethostname() if self.host in ('0.0.0.0', '') else self.host
        return f'http://{shown}:{self.port}/?token={self.token}'

    def start(self) -> 'TokenProxy':
        self._thread = threading.Thread(target=self._server.serve_forever, name='nasext-token-proxy', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> 'TokenProxy':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
