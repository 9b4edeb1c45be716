// nni-nasext: keep NNI's manager off the network.
//
// Loaded into NNI's Node.js manager with NODE_OPTIONS="--require <this file>" by nni_nasext.netguard
// (NNI's installed files stay untouched). NNI 3.0's REST server calls `app.listen(port)`, which Node
// binds to every interface; this preload makes every TCP listener that names no host bind to
// NASEXT_BIND_HOST (default 127.0.0.1) instead. A listener that names its host, a Unix socket or an
// inherited handle is left as it is.
'use strict';
const net = require('net');

const host = process.env.NASEXT_BIND_HOST || '127.0.0.1';
const listen = net.Server.prototype.listen;

function isPort(v) {
  return typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v));
}

// NASEXT_ALSO_BIND: addresses (comma-separated) where the machines of a remote or cluster
// training service reach the manager (the experiment's nniManagerIp). Each gets a plain TCP
// forwarder to the loopback listener on the same port: the manager is reachable there and on
// 127.0.0.1, and still not on every interface.
const also = (process.env.NASEXT_ALSO_BIND || '').split(',').map((s) => s.trim()).filter(Boolean);

function forwardFrom(server) {
  if (also.length === 0) return;
  server.once('listening', () => {
    const addr = server.address();
    if (addr === null || typeof addr !== 'object') return;   // a Unix socket or pipe
    const port = addr.port;
    for (const extra of also) {
      const fwd = net.createServer((inbound) => {
        const outbound = net.connect(port, host);
        inbound.pipe(outbound);
        outbound.pipe(inbound);
        inbound.on('error', () => outbound.destroy());
        outbound.on('error', () => inbound.destroy());
      });
      fwd.on('error', (err) => console.error(`nasext: cannot also listen on ${extra}:${port}: ${err.message}`));
      listen.call(fwd, port, extra);
      fwd.unref();
      server.once('close', () => fwd.close());
    }
  });
}

net.Server.prototype.listen = function (...args) {
  const hostless = !(args.length > 0 && typeof args[0] === 'object' && args[0] !== null
                     && (args[0].host || args[0].path !== undefined || args[0].fd !== undefined
                         || args[0].handle !== undefined || args[0]._handle !== undefined))
                   && !(isPort(args[0]) && typeof args[1] === 'string');
  if (hostless) forwardFrom(this);
  if (args.length === 0 || args[0] === undefined || args[0] === null || typeof args[0] === 'function') {
    // listen() / listen(cb): a random port on every interface
    args = [{ port: 0, host }, ...args.filter((a) => typeof a === 'function')];
  } else if (isPort(args[0])) {
    // listen(port[, host][, backlog][, callback])
    if (args.length === 1 || typeof args[1] !== 'string') {
      args.splice(1, args.length > 1 && (args[1] === undefined || args[1] === null) ? 1 : 0, host);
    }
  } else if (typeof args[0] === 'object' && args[0].path === undefined && args[0].fd === undefined
             && args[0].handle === undefined && args[0]._handle === undefined && !args[0].host) {
    args[0] = Object.assign({}, args[0], { host });
  }
  return listen.apply(this, args);
};
