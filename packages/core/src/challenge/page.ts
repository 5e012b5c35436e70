/**
 * The self-hosted challenge page: one HTML document with its style and script inline, so
 * it makes no request to anyone but the site itself. The script solves the proof of work
 * with Web Crypto and posts the answer back; without JavaScript the page says why it
 * cannot go on.
 */

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)
}

/** JSON inside a <script> element: `<` escaped so no value can close the element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c')
}

const STYLE = `
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--bg:#f6f8fa;--card:#fff;--accent:#0b62d6;--ok:#1a7f37;--bad:#cf222e}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9da7b3;--bg:#0d1117;--card:#161b22;--accent:#4493f8;--ok:#3fb950;--bad:#f85149}}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:grid;place-items:center;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;padding:1rem}
main{background:var(--card);max-width:28rem;width:100%;padding:2rem;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.12),0 8px 24px rgba(0,0,0,.06)}
h1{font-size:1.35rem;margin:0 0 .5rem}
p{margin:.5rem 0;color:var(--muted)}
.bar{height:6px;border-radius:3px;background:color-mix(in srgb,var(--accent) 18%,transparent);overflow:hidden;margin:1.25rem 0 .5rem}
.bar span{display:block;height:100%;width:0;background:var(--accent);transition:width .2s ease}
#status{font-weight:600;color:var(--fg)}
#status[data-state=done]{color:var(--ok)}
#status[data-state=error]{color:var(--bad)}
button{font:inherit;padding:.55rem 1.1rem;border-radius:8px;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer;margin-top:.75rem}
button:focus-visible{outline:3px solid color-mix(in srgb,var(--accent) 45%,transparent);outline-offset:2px}
.noscript{border-left:4px solid var(--bad);padding:.5rem .75rem;background:color-mix(in srgb,var(--bad) 8%,transparent);color:var(--fg)}
small{color:var(--muted)}
@media (prefers-reduced-motion:reduce){.bar span{transition:none}}
`

/**
 * SHA-256 of one 64-byte block, in plain JavaScript. The challenge input (16-byte salt,
 * 16-byte nonce, 4-byte counter) fits one block, so the solver fills the block once and
 * only changes the counter word: about twenty times faster than one Web Crypto call per
 * candidate, and it works on plain-HTTP pages where Web Crypto is unavailable.
 * Exported as source so a unit test can check it against node:crypto.
 */
export const DIGEST_SOURCE = `
var K = new Uint32Array([0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2])
var IV = new Uint32Array([0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19])
var W = new Uint32Array(64), H = new Uint32Array(8)
function digestBlock(block) {
  var i, x, y
  for (i = 0; i < 16; i++) W[i] = block[i]
  for (i = 16; i < 64; i++) {
    x = W[i - 15]; y = W[i - 2]
    W[i] = (W[i - 16] + (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) + W[i - 7] + (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) | 0
  }
  var a = IV[0], b = IV[1], c = IV[2], d = IV[3], e = IV[4], f = IV[5], g = IV[6], h = IV[7], t1, t2
  for (i = 0; i < 64; i++) {
    t1 = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0
    t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) + ((a & b) ^ (a & c) ^ (b & c))) | 0
    h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0
  }
  H[0] = a + IV[0]; H[1] = b + IV[1]; H[2] = c + IV[2]; H[3] = d + IV[3]
  H[4] = e + IV[4]; H[5] = f + IV[5]; H[6] = g + IV[6]; H[7] = h + IV[7]
  return H
}
`

// The solver mirrors the server's key derivation: SHA-256(salt || nonce || counter as a
// big-endian uint32), looking for the counter whose key starts with the signed prefix.
// It works in slices so the page stays responsive and the progress bar moves.
const SCRIPT = `
(function () {
  ${DIGEST_SOURCE}
  document.getElementById('progress').hidden = false
  var status = document.getElementById('status')
  var bar = document.getElementById('bar')
  function say(text, state) { status.textContent = text; if (state) status.setAttribute('data-state', state) }
  var data = JSON.parse(document.getElementById('sp-challenge').textContent)
  var p = data.challenge.parameters
  function words(hex) { var out = []; for (var i = 0; i < hex.length; i += 8) out.push(parseInt(hex.substr(i, 8), 16) >>> 0); return out }
  function hex(values) { var out = ''; for (var i = 0; i < values.length; i++) out += ('0000000' + values[i].toString(16)).slice(-8); return out }
  var block = new Uint32Array(16)
  block.set(words(p.salt + p.nonce))
  block[9] = 0x80000000
  block[15] = 36 * 8
  var prefix = words(p.keyPrefix)
  var started = Date.now(), max = data.max, n = 0
  function slice() {
    var end = Math.min(max, n + 20000)
    for (; n <= end; n++) {
      block[8] = n
      var h = digestBlock(block)
      if (h[0] !== prefix[0]) continue
      var hit = true
      for (var i = 1; i < prefix.length; i++) if (h[i] !== prefix[i]) { hit = false; break }
      if (!hit) continue
      var solution = { counter: n, derivedKey: hex(h), time: Date.now() - started }
      bar.style.width = '100%'
      say('Thanks, you are through. Taking you back\u2026', 'done')
      var form = document.getElementById('sp-form')
      form.elements.payload.value = JSON.stringify({ challenge: data.challenge, solution: solution })
      form.submit()
      return
    }
    if (n > max) { say('The check could not be completed. Please reload the page to try again.', 'error'); return }
    bar.style.width = Math.min(95, Math.round((100 * n) / max)) + '%'
    setTimeout(slice, 0)
  }
  slice()
})()
`

export interface ChallengePageInput {
  challenge: unknown
  /** Highest counter the solver may need to try. */
  max: number
  verifyPath: string
  redirectUrl: string
  nonce: string
  failed: boolean
}

export function challengePage(input: ChallengePageInput): string {
  const failed = input.failed ? '<p role="alert">That check did not go through. It runs again below.</p>' : ''
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Checking your browser</title>
<style nonce="${input.nonce}">${STYLE}</style>
</head>
<body>
<main aria-labelledby="sp-title">
<h1 id="sp-title">Just a moment</h1>
<p>This site checks that visitors are people, not automated tools. Your browser is doing a short calculation; you don't need to do anything.</p>
${failed}
<div id="progress" hidden>
<div class="bar" aria-hidden="true"><span id="bar"></span></div>
<p id="status" role="status" aria-live="polite">Checking\u2026</p>
</div>
<noscript><p class="noscript">This check needs JavaScript, which is turned off or blocked in this browser. Turn it on for this site and reload the page to continue.</p></noscript>
<form id="sp-form" method="post" action="${escapeHtml(input.verifyPath)}">
<input type="hidden" name="payload" value="">
<input type="hidden" name="redirect_url" value="${escapeHtml(input.redirectUrl)}">
</form>
<p><small>No data leaves this site for the check.</small></p>
</main>
<script type="application/json" id="sp-challenge">${scriptJson({ challenge: input.challenge, max: input.max })}</script>
<script nonce="${input.nonce}">${SCRIPT}</script>
</body>
</html>`
}

export function failurePage(retryUrl: string, nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex"><title>Check failed</title><style nonce="${nonce}">${STYLE}</style></head>
<body><main aria-labelledby="sp-title"><h1 id="sp-title">The check did not go through</h1>
<p>It may have expired or been used already.</p>
<p><a href="${escapeHtml(retryUrl)}">Try again</a></p></main></body></html>`
}
