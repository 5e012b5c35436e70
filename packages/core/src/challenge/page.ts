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

// The solver mirrors the server's key derivation: SHA-256(salt || nonce || counter as
// big-endian uint32), looking for the counter whose key starts with the signed prefix.
const SCRIPT = `
(async function () {
  var status = document.getElementById('status')
  var bar = document.getElementById('bar')
  function say(text, state) { status.textContent = text; if (state) status.setAttribute('data-state', state) }
  if (!window.crypto || !crypto.subtle) { say('This browser cannot run the check here: it needs a secure (HTTPS) connection.', 'error'); return }
  var data = JSON.parse(document.getElementById('gh-challenge').textContent)
  var p = data.challenge.parameters
  function bytes(hex) { var out = new Uint8Array(hex.length / 2); for (var i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16); return out }
  function hex(buffer) { return Array.prototype.map.call(new Uint8Array(buffer), function (b) { return ('0' + b.toString(16)).slice(-2) }).join('') }
  var salt = bytes(p.salt), nonce = bytes(p.nonce), prefix = bytes(p.keyPrefix)
  var started = Date.now(), batch = 64, max = data.max
  function candidate(n) {
    var input = new Uint8Array(salt.length + nonce.length + 4)
    input.set(salt); input.set(nonce, salt.length)
    new DataView(input.buffer).setUint32(salt.length + nonce.length, n)
    return crypto.subtle.digest('SHA-256', input)
  }
  function matches(digest) { var d = new Uint8Array(digest); for (var i = 0; i < prefix.length; i++) if (d[i] !== prefix[i]) return false; return true }
  for (var n = 0; n <= max; n += batch) {
    var work = []
    for (var k = 0; k < batch && n + k <= max; k++) work.push(candidate(n + k))
    var digests = await Promise.all(work)
    for (var j = 0; j < digests.length; j++) {
      if (matches(digests[j])) {
        var solution = { counter: n + j, derivedKey: hex(digests[j]), time: Date.now() - started }
        bar.style.width = '100%'
        say('Thanks, you are through. Taking you back\\u2026', 'done')
        var form = document.getElementById('gh-form')
        form.elements.payload.value = JSON.stringify({ challenge: data.challenge, solution: solution })
        form.submit()
        return
      }
    }
    bar.style.width = Math.min(95, Math.round((100 * n) / max)) + '%'
  }
  say('The check could not be completed. Please reload the page to try again.', 'error')
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
<main aria-labelledby="gh-title">
<h1 id="gh-title">Just a moment</h1>
<p>This site checks that visitors are people, not automated tools. Your browser is doing a short calculation; you don't need to do anything.</p>
${failed}
<div class="bar" aria-hidden="true"><span id="bar"></span></div>
<p id="status" role="status" aria-live="polite">Checking\u2026</p>
<noscript><p class="noscript">This check needs JavaScript, which is turned off or blocked in this browser. Turn it on for this site and reload the page to continue.</p></noscript>
<form id="gh-form" method="post" action="${escapeHtml(input.verifyPath)}">
<input type="hidden" name="payload" value="">
<input type="hidden" name="redirect_url" value="${escapeHtml(input.redirectUrl)}">
</form>
<p><small>No data leaves this site for the check.</small></p>
</main>
<script type="application/json" id="gh-challenge">${scriptJson({ challenge: input.challenge, max: input.max })}</script>
<script nonce="${input.nonce}">${SCRIPT}</script>
</body>
</html>`
}

export function failurePage(retryUrl: string, nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex"><title>Check failed</title><style nonce="${nonce}">${STYLE}</style></head>
<body><main aria-labelledby="gh-title"><h1 id="gh-title">The check did not go through</h1>
<p>It may have expired or been used already.</p>
<p><a href="${escapeHtml(retryUrl)}">Try again</a></p></main></body></html>`
}
