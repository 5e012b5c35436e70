// The public-API report of every published package. API Extractor reads each package's built
// declarations (the `types` of its `import` export, under dist/) and renders the exported surface
// as packages/<dir>/api/<name>.api.md, which is checked in: a change to what a package exports, or
// to the type of anything it exports, shows up as a change to that file in review.
// The settings shared by every package are in the root api-extractor.json.
//
// Usage, after `pnpm build`:
//   node scripts/api-report.mjs            check: print the difference and exit 1 when a report is stale or missing
//   node scripts/api-report.mjs --update   rewrite the reports from the build
// Package folder names limit the run: `node scripts/api-report.mjs --update core express`.
// `pnpm api:check` and `pnpm api:update` (which builds first) run this script.
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Extractor, ExtractorConfig, ExtractorLogLevel } from '@microsoft/api-extractor'
import { publishedPackages } from './check-packs.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const configPath = join(root, 'api-extractor.json')

const args = process.argv.slice(2)
const update = args.includes('--update')
const unknownFlags = args.filter((arg) => arg.startsWith('-') && arg !== '--update')
if (unknownFlags.length > 0) {
  console.error(`Unknown option ${unknownFlags.join(', ')}. Usage: node scripts/api-report.mjs [--update] [package folder...]`)
  process.exit(2)
}
const published = publishedPackages()
const requested = args.filter((arg) => !arg.startsWith('-'))
const notPublished = requested.filter((dir) => !published.includes(dir))
if (notPublished.length > 0) {
  console.error(`Not a published package folder under packages/: ${notPublished.join(', ')}`)
  process.exit(2)
}
const dirs = requested.length > 0 ? requested : published

/** The declaration file a package's `import` condition points at, as an absolute path. */
function typesEntry(packageDir) {
  const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'))
  const types = manifest.exports?.['.']?.import?.types ?? manifest.types
  if (typeof types !== 'string') throw new Error(`${relative(root, packageDir)}/package.json names no types for its import export`)
  return join(packageDir, types)
}

/** API Extractor's patch, with its header naming the checked-in report and the built declarations. */
function diffBody(text, report, entry) {
  const lines = text.replace(/^Changes to the API report:\n\n/, '').split('\n')
  const hunk = lines.findIndex((line) => line.startsWith('@@'))
  return [`--- ${report}`, `+++ ${relative(root, entry)}`, ...lines.slice(hunk === -1 ? 0 : hunk)].join('\n')
}

/** Runs API Extractor on one package: rewrites its report (update) or compares it, printing any difference. */
function invoke(config, report, entry) {
  return Extractor.invoke(config, {
    localBuild: update,
    printApiReportDiff: !update,
    messageCallback(message) {
      switch (message.messageId) {
        // Replaced by this script's own lines, which name the command that fixes them.
        case 'console-api-report-not-copied':
        case 'console-api-report-copied':
        case 'console-api-report-created':
          message.handled = true
          break
        case 'console-api-report-diff':
          message.handled = true
          console.log(`${report} differs from the build (- checked in, + built):\n${diffBody(message.text, report, entry)}`)
          break
        // Which TypeScript API Extractor bundles: not news once per package.
        case 'console-preamble':
        case 'console-compiler-version-notice':
          message.logLevel = ExtractorLogLevel.None
          break
      }
    },
  })
}

const stale = []
const failed = []
for (const dir of dirs) {
  const packageDir = join(root, 'packages', dir)
  const entry = typesEntry(packageDir)
  if (!existsSync(entry)) {
    console.error(`${dir}: ${relative(root, entry)} is missing; run \`pnpm build\` first.`)
    failed.push(dir)
    continue
  }
  const configObject = ExtractorConfig.loadFile(configPath)
  configObject.projectFolder = packageDir
  configObject.mainEntryPointFilePath = entry
  const config = ExtractorConfig.prepare({
    configObject,
    configObjectFullPath: configPath,
    packageJsonFullPath: join(packageDir, 'package.json'),
  })
  const report = relative(root, join(config.reportFolder, config.reportConfigs[0]?.fileName ?? `${dir}.api.md`))
  if (update) mkdirSync(config.reportFolder, { recursive: true })

  let result
  try {
    result = invoke(config, report, entry)
  } catch (error) {
    // API Extractor throws on declarations it cannot follow, such as a name that resolves to nothing.
    console.error(`${dir}: ${error instanceof Error ? error.message : error}`)
    failed.push(dir)
    continue
  }

  if (result.errorCount > 0) {
    failed.push(dir)
  } else if (result.apiReportChanged) {
    if (update) console.log(`${dir}: updated ${report}`)
    else {
      if (!existsSync(join(root, report))) console.log(`${report} is missing.`)
      stale.push(dir)
    }
  } else if (!result.succeeded) {
    failed.push(dir)
  } else {
    console.log(`${dir}: ${report} is up to date`)
  }
}

if (failed.length > 0) console.error(`API Extractor failed for ${failed.join(', ')} (see the messages above).`)
if (stale.length > 0) {
  console.error(
    `The public API of ${stale.join(', ')} differs from the checked-in report. If the change is intended, ` +
      'run `pnpm api:update` and commit the updated packages/*/api/*.api.md with it.',
  )
}
process.exit(failed.length > 0 || stale.length > 0 ? 1 : 0)
