// Packs every publishable package as `pnpm publish` would and checks each tarball for what a
// user of the registry needs: resolvable dependency ranges, both module formats with their
// types, README and LICENSE, and the metadata the registry page shows.
// Usage: node scripts/check-packs.mjs (after `pnpm build`); exits 1 naming every problem.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const DEPENDENCY_FIELDS = ['dependencies', 'peerDependencies', 'optionalDependencies', 'devDependencies']
const BUILD_FILES = ['dist/index.mjs', 'dist/index.cjs', 'dist/index.d.mts', 'dist/index.d.cts']
/** Files a package ships besides its build, by package folder. */
const EXTRA_FILES = { core: ['POLICIES.md', 'CODES.md'] }

/** The folders under packages/ whose package is published. */
export function publishedPackages() {
  const packagesDir = join(root, 'packages')
  return readdirSync(packagesDir)
    .filter((dir) => existsSync(join(packagesDir, dir, 'package.json')))
    .filter((dir) => JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8')).private !== true)
    .sort()
}

/** Packs one package folder into `destination`; returns the tarball's path. */
export function pack(dir, destination) {
  const output = execFileSync('pnpm', ['pack', '--pack-destination', destination], {
    cwd: join(root, 'packages', dir),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const tarball = output
    .trim()
    .split('\n')
    .map((line) => line.trim())
    .findLast((line) => line.endsWith('.tgz'))
  if (tarball === undefined) throw new Error(`pnpm pack printed no tarball for ${dir}:\n${output}`)
  return tarball.startsWith('/') ? tarball : join(destination, tarball)
}

function filesUnder(dir, base = dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name), base) : [relative(base, join(dir, entry.name))],
  )
}

function exportTargets(value) {
  if (typeof value === 'string') return [value]
  if (typeof value !== 'object' || value === null) return []
  return Object.values(value).flatMap(exportTargets)
}

/** What is wrong with one package's tarball, as sentences; empty when nothing is. */
export function problemsOf(dir, tarball) {
  const unpacked = mkdtempSync(join(tmpdir(), `sallyport-pack-${dir}-`))
  try {
    execFileSync('tar', ['-xzf', tarball, '-C', unpacked])
    const packageRoot = join(unpacked, 'package')
    const files = new Set(filesUnder(packageRoot))
    const manifest = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8'))
    const problems = []
    if (!String(manifest.name).startsWith('@sallyport/')) problems.push(`is named ${manifest.name}, not @sallyport/…`)
    for (const field of DEPENDENCY_FIELDS) {
      for (const [name, range] of Object.entries(manifest[field] ?? {})) {
        if (String(range).startsWith('workspace:')) problems.push(`${field}.${name} is still "${range}"`)
      }
    }
    for (const file of ['README.md', 'LICENSE', 'package.json', ...BUILD_FILES, ...(EXTRA_FILES[dir] ?? [])]) {
      if (!files.has(file)) problems.push(`lacks ${file}`)
    }
    for (const target of exportTargets(manifest.exports)) {
      if (!files.has(target.replace(/^\.\//, ''))) problems.push(`exports ${target}, which is not in the tarball`)
    }
    for (const file of files) {
      if (file.startsWith('src/') || file.startsWith('test/') || file.includes('node_modules/')) problems.push(`ships ${file}`)
    }
    if (manifest.license !== 'MIT') problems.push(`has license ${manifest.license}`)
    if (typeof manifest.repository?.url !== 'string') problems.push('has no repository.url')
    if (typeof manifest.homepage !== 'string') problems.push('has no homepage')
    if (!Array.isArray(manifest.keywords) || manifest.keywords.length === 0) problems.push('has no keywords')
    if (typeof manifest.engines?.node !== 'string') problems.push('has no engines.node')
    if (manifest.publishConfig?.access !== 'public')
      problems.push('is not published with access public (a scoped package is private by default)')
    if (files.has('README.md')) {
      // The registry shows the README outside the repository: a relative link there is broken.
      const readme = readFileSync(join(packageRoot, 'README.md'), 'utf8')
      for (const [, target] of readme.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (!/^(?:https?:|mailto:|#)/.test(target)) problems.push(`README links to ${target}, which breaks on the registry's page`)
      }
    }
    return problems
  } finally {
    rmSync(unpacked, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const destination = mkdtempSync(join(tmpdir(), 'sallyport-packs-'))
  mkdirSync(destination, { recursive: true })
  let failed = false
  for (const dir of publishedPackages()) {
    const problems = problemsOf(dir, pack(dir, destination))
    failed ||= problems.length > 0
    console.log(problems.length === 0 ? `ok  packages/${dir}` : `BAD packages/${dir}:\n  - ${problems.join('\n  - ')}`)
  }
  rmSync(destination, { recursive: true, force: true })
  process.exit(failed ? 1 : 0)
}
