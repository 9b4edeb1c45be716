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

net.Server.prototype.listen = function (...args) {
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
