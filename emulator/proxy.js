// The emulator's HTTPS proxy (CONNECT), run by nginx's stream module with njs
// (`stream` block of nginx.conf.tmpl). Tools that honour HTTPS_PROXY (az, the Python and JS
// SDKs, curl, Go) send `CONNECT host:443` here; for an emulated host the tunnel goes to the
// emulator's https port, where TLS is answered with the emulator's certificate. Any other host
// is refused with a 403 that says so: nothing is ever forwarded to the internet.
//
// Three phases, one per nginx hook:
//   preread  (preread)  reads the CONNECT request and decides, in $emu_proxy_refused
//   target   (js_set)   the upstream: the emulator's https port, or the refusal socket
//   tunnel   (filter)   answers the CONNECT (200, or 403 naming the host), then steps aside:
//                       the TLS bytes flow through nginx untouched.
// $emu_proxy_hosts (names, "*.suffix" for wildcards), $emu_https_port and $emu_refuse_socket
// are set in nginx.conf from the emulator's certificate names.

var MAX_HEAD = 8192;

function emulated(s, host, port) {
  host = host.toLowerCase();
  if (host === '127.0.0.1' || host === 'localhost') {
    // libcurl with CURLOPT_CONNECT_TO (azcmk's AZCMK_CONNECT_TO) tunnels to the mapped address
    return port === s.variables.emu_https_port;
  }
  if (port !== '443') return false;
  var names = s.variables.emu_proxy_hosts.split(',');
  for (var i = 0; i < names.length; i++) {
    var n = names[i];
    if (n.charAt(0) === '*') {
      var suffix = n.slice(1);
      if (host.length > suffix.length && host.slice(-suffix.length) === suffix &&
          host.slice(0, -suffix.length).indexOf('.') < 0) return true;
    } else if (host === n) {
      return true;
    }
  }
  return false;
}

// Why a request is refused, or '' when it may pass.
function verdict(s, head) {
  var eol = head.indexOf('\r\n');
  var line = (eol < 0 ? head : head.slice(0, eol)).toString();
  var m = /^CONNECT (\[[0-9a-fA-F:.]+\]|[^\s:\/]+):(\d+) HTTP\/1\.[01]$/.exec(line);
  if (!m) {
    return 'only CONNECT host:443 is served here (got "' + line.slice(0, 80).replace(/[^ -~]/g, '?') + '")';
  }
  if (!emulated(s, m[1], m[2])) {
    return m[1] + ':' + m[2] + ' is not emulated by azcmk; the proxy never forwards to the internet';
  }
  return '';
}

function preread(s) {
  var head = Buffer.alloc(0);
  s.on('upstream', function (data, flags) {
    head = Buffer.concat([head, data]);
    if (head.indexOf('\r\n\r\n') < 0 && !flags.last && head.length < MAX_HEAD) return;
    var why = head.indexOf('\r\n\r\n') < 0 ? 'incomplete CONNECT request' : verdict(s, head);
    if (why) {
      s.variables.emu_proxy_refused = why;
      s.warn('azcmk emulator proxy: refused: ' + why);
    }
    s.done();
  });
}

function target(s) {
  return s.variables.emu_proxy_refused ? 'unix:' + s.variables.emu_refuse_socket
    : '127.0.0.1:' + s.variables.emu_https_port;
}

function tunnel(s) {
  s.on('upstream', function (data, flags) {
    s.off('upstream');
    var why = s.variables.emu_proxy_refused;
    if (why) {
      // The reason phrase carries the explanation too: Python and others show only the status line.
      var body = 'azcmk emulator proxy: ' + why + '\n';
      s.sendDownstream('HTTP/1.1 403 ' + why + '\r\nContent-Type: text/plain\r\nContent-Length: ' +
        body.length + '\r\nConnection: close\r\n\r\n' + body);
      return; // the refusal socket closes at once, which ends the session
    }
    s.sendDownstream('HTTP/1.1 200 Connection established\r\n\r\n');
    var rest = data.slice(data.indexOf('\r\n\r\n') + 4);
    if (rest.length) s.send(rest, flags);
  });
}

export default { preread: preread, target: target, tunnel: tunnel };
