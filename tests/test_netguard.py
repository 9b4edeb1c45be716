"""NNI's manager stays off the network (``nni_nasext.netguard``): the Node preload binds it to
loopback; ``TokenProxy`` exposes it only with the token. The last test starts a real ``nnictl``
experiment and probes it from another network namespace (a second "host" on a veth pair)."""
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from nni_nasext import netguard


def node_binary():
    import nni
    path = Path(nni.__file__).resolve().parent.parent / 'nni_node' / 'node'
    return str(path) if path.exists() else shutil.which('node')


NODE_SCRIPT = r"""
const http = require('http');
const calls = [s => s.listen(0), s => s.listen(0, () => {}), s => s.listen({port: 0}), s => s.listen(0, '0.0.0.0'),
               s => s.listen(0, undefined, 511)];
const out = []; let left = calls.length;
calls.forEach((f, i) => { const s = http.createServer(); f(s);
  s.on('listening', () => { out[i] = s.address().address; s.close(); if (--left === 0) console.log(JSON.stringify(out)); }); });
"""


@pytest.mark.skipif(node_binary() is None, reason='no Node.js (NNI ships one in nni_node/)')
def test_preload_binds_every_hostless_listener_to_loopback(tmp_path):
    script = tmp_path / 'listen.js'
    script.write_text(NODE_SCRIPT)
    plain = json.loads(subprocess.run([node_binary(), str(script)], capture_output=True, text=True, check=True,
                                      env={k: v for k, v in os.environ.items() if k != 'NODE_OPTIONS'}).stdout)
    assert plain[0] in ('::', '0.0.0.0')           # Node's (and NNI's) default: every interface
    guarded = json.loads(subprocess.run([node_binary(), str(script)], capture_output=True, text=True, check=True,
                                        env=netguard.loopback_env()).stdout)
    assert guarded == ['127.0.0.1', '127.0.0.1', '127.0.0.1', '0.0.0.0', '127.0.0.1']  # an explicit host is kept


ALSO_SCRIPT = r"""
const http = require('http');
const get = (host, port) => new Promise((ok) => {
  http.get({host, port, path: '/'}, (r) => { let d = ''; r.on('data', (c) => d += c); r.on('end', () => ok(d)); })
      .on('error', (e) => ok(e.code)); });
const s = http.createServer((req, res) => res.end('manager'));
s.listen(0, () => setTimeout(async () => {
  const port = s.address().port;
  console.log(JSON.stringify([s.address().address, await get('127.0.0.1', port), await get('127.0.0.2', port),
                              await get('127.0.0.3', port)]));
  s.close();
}, 100));
"""


@pytest.mark.skipif(node_binary() is None, reason='no Node.js (NNI ships one in nni_node/)')
def test_preload_also_serves_the_address_of_a_remote_training_service(tmp_path):
    """``also``: the manager is forwarded to the nniManagerIp that remote hosts reach (127.0.0.2
    stands for it here), and still refused on any other address (127.0.0.3)."""
    script = tmp_path / 'also.js'
    script.write_text(ALSO_SCRIPT)
    out = json.loads(subprocess.run([node_binary(), str(script)], capture_output=True, text=True, check=True,
                                    env=netguard.loopback_env(also=['127.0.0.2']), timeout=30).stdout)
    assert out == ['127.0.0.1', 'manager', 'manager', 'ECONNREFUSED']
    assert 'NASEXT_ALSO_BIND' not in netguard.loopback_env(dict(os.environ, NASEXT_ALSO_BIND='10.0.0.1'))


def test_loopback_env_adds_the_preload_once_and_the_context_restores_the_environment(monkeypatch):
    monkeypatch.setenv('NODE_OPTIONS', '--max-old-space-size=512')
    env = netguard.loopback_env(netguard.loopback_env())
    assert env['NODE_OPTIONS'].startswith('--max-old-space-size=512 ')
    assert env['NODE_OPTIONS'].count('loopback.js') == 1 and env['NASEXT_BIND_HOST'] == '127.0.0.1'
    monkeypatch.delenv('NASEXT_BIND_HOST', raising=False)
    with netguard.loopback():
        assert 'loopback.js' in os.environ['NODE_OPTIONS']
    assert os.environ['NODE_OPTIONS'] == '--max-old-space-size=512' and 'NASEXT_BIND_HOST' not in os.environ


class _Echo(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _reply(self):
        n = int(self.headers.get('Content-Length') or 0)
        body = json.dumps({'method': self.command, 'path': self.path, 'body': self.rfile.read(n).decode(),
                           'cookie': self.headers.get('Cookie'), 'auth': self.headers.get('Authorization')}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _reply


@pytest.fixture
def backend():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def fetch(url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_token_proxy_forwards_only_requests_with_the_token(backend):
    with netguard.TokenProxy(backend, host='127.0.0.1') as proxy:
        base = f'http://127.0.0.1:{proxy.port}'
        assert fetch(base + '/api/v1/nni/experiment')[0] == 401
        assert fetch(base + '/api/v1/nni/experiment?token=' + 'x' * 32)[0] == 401
        assert fetch(base + '/', headers={'Cookie': 'nasext_token=wrong'})[0] == 401
        status, headers, body = fetch(f'{base}/api/v1/nni/experiment?a=1&token={proxy.token}')
        seen = json.loads(body)
        assert status == 200 and seen['path'] == '/api/v1/nni/experiment?a=1'   # the token is not forwarded
        assert f'nasext_token={proxy.token}' in headers['Set-Cookie'] and 'HttpOnly' in headers['Set-Cookie']
        # the web UI's next requests carry the cookie; scripts can send a bearer token
        status, _, body = fetch(base + '/api/v1/nni/trial-jobs', headers={'Cookie': f'nasext_token={proxy.token}'})
        assert status == 200 and json.loads(body)['cookie'] is None                 # not passed on to NNI
        status, _, body = fetch(base + '/api/v1/nni/experiment', data=b'{"x": 1}', method='PUT',
                                headers={'Authorization': f'Bearer {proxy.token}', 'Content-Type': 'application/json'})
        assert status == 200 and json.loads(body)['body'] == '{"x": 1}' and json.loads(body)['method'] == 'PUT'
        assert proxy.url.endswith(f':{proxy.port}/?token={proxy.token}')
    with pytest.raises(ValueError):
        netguard.TokenProxy(backend, token='short')


def test_token_proxy_says_when_the_manager_is_gone():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    dead = s.getsockname()[1]
    s.close()
    with netguard.TokenProxy(dead, host='127.0.0.1') as proxy:
        status, _, body = fetch(f'http://127.0.0.1:{proxy.port}/?token={proxy.token}')
    assert status == 502 and b'does not answer' in body


# ------------------------------------------------------------------ a real manager, another "host"
def _netns_usable():
    if sys.platform != 'linux' or os.geteuid() != 0 or shutil.which('ip') is None:
        return False
    name = f'nxprobe{os.getpid()}'
    ok = subprocess.run(['ip', 'netns', 'add', name], capture_output=True).returncode == 0
    if ok:
        subprocess.run(['ip', 'netns', 'delete', name], capture_output=True)
    return ok


@pytest.fixture
def other_host():
    """A network namespace joined to this one by a veth pair: (address of this host as seen from
    there, a function running a Python snippet there). Removed afterwards."""
    if not _netns_usable():
        pytest.skip('needs root and `ip netns` (a second network namespace as the other host)')
    tag = os.getpid() % 50000
    ns, here, there = f'nasext{tag}', f'nxh{tag}', f'nxn{tag}'
    a, b = 10 + tag % 200, tag % 250
    host_ip, ns_ip = f'10.{a}.{b}.1', f'10.{a}.{b}.2'

    def ip(*args):
        subprocess.run(['ip', *args], check=True, capture_output=True)

    ip('netns', 'add', ns)
    try:
        ip('link', 'add', here, 'type', 'veth', 'peer', 'name', there)
        ip('link', 'set', there, 'netns', ns)
        ip('addr', 'add', f'{host_ip}/30', 'dev', here)
        ip('link', 'set', here, 'up')
        ip('netns', 'exec', ns, 'ip', 'addr', 'add', f'{ns_ip}/30', 'dev', there)
        ip('netns', 'exec', ns, 'ip', 'link', 'set', there, 'up')
        ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up')

        def run_there(code):
            return subprocess.run(['ip', 'netns', 'exec', ns, sys.executable, '-c', code],
                                  capture_output=True, text=True, timeout=60)
        yield host_ip, run_there
    finally:
        subprocess.run(['ip', 'link', 'delete', here], capture_output=True)
        subprocess.run(['ip', 'netns', 'delete', ns], capture_output=True)


PROBE = """
import socket, sys
try:
    socket.create_connection(({host!r}, {port}), timeout=5).close(); print('open')
except OSError as err:
    print('closed', type(err).__name__)
"""

GET = """
import urllib.request, urllib.error
try:
    print(urllib.request.urlopen({url!r}, timeout=10).status)
except urllib.error.HTTPError as err:
    print(err.code)
"""


def test_the_manager_is_loopback_only_and_exposed_only_with_the_token(tmp_path, other_host):
    from nni_nasext import nnictl_tools as nt
    from test_nnictl_integration import BUDGET_TRIAL, processes_mentioning, write_config
    host_ip, run_there = other_host
    # the probe can see this host: a listener on every interface is reachable from there
    control = socket.socket()
    control.bind(('0.0.0.0', 0))
    control.listen(1)
    try:
        assert run_there(PROBE.format(host=host_ip, port=control.getsockname()[1])).stdout.strip() == 'open'
    finally:
        control.close()
    nt.register_tuners(verbose=False)
    # a light trial (tests/budget_trial.py) reports through NNI as a training one does
    config = write_config(tmp_path, 1, {}, concurrency=1, command=BUDGET_TRIAL)
    port = nt.free_port()
    exp_id = nt.create(config, port)
    try:
        trials = nt.wait(port, timeout=240, poll=2, verbose=False)
        assert [t['status'] for t in trials] == ['SUCCEEDED']     # the tuner and trial reach the manager on loopback
        listening = {(c.laddr.ip, c.laddr.port) for c in __import__('psutil').net_connections('tcp')
                     if c.status == 'LISTEN' and c.laddr.port == port}
        assert listening == {('127.0.0.1', port)}
        assert nt.Rest(port).get('/check-status')['status'] in ('DONE', 'RUNNING', 'NO_MORE_TRIAL')
        assert run_there(PROBE.format(host=host_ip, port=port)).stdout.split()[0] == 'closed'
        with netguard.TokenProxy(port, host=host_ip) as proxy:
            base = f'http://{host_ip}:{proxy.port}/api/v1/nni/check-status'
            assert run_there(GET.format(url=base)).stdout.strip() == '401'
            assert run_there(GET.format(url=base + '?token=' + 'a' * 32)).stdout.strip() == '401'
            assert run_there(GET.format(url=f'{base}?token={proxy.token}')).stdout.strip() == '200'
    finally:
        nt.stop(exp_id)
    deadline = time.time() + 30
    while processes_mentioning(exp_id) and time.time() < deadline:
        time.sleep(1)
    assert processes_mentioning(exp_id) == []
