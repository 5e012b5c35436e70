/** The folders under packages/ whose package is published. */
export function publishedPackages(): string[]
/** Packs one package folder into `destination`; returns the tarball's path. */
export function pack(dir: string, destination: string): string
/** What is wrong with one package's tarball, as sentences; empty when nothing is. */
export function problemsOf(dir: string, tarball: string): string[]
