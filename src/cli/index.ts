#!/usr/bin/env node
/**
 * `npe <command> [flags]`: a thin dispatcher. Each command lives in
 * src/cli/commands/<name>.ts and exports `run(argv: string[]): Promise<number>`
 * (the exit code). Commands parse their own flags with node:util parseArgs.
 */
const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run: (argv: string[]) => Promise<number> }> }> = {
  serve: { summary: 'the HTTP service (embedded without REDIS_URL; --workers N spawns workers)', load: () => import('./commands/serve.js') },
  api: { summary: 'the HTTP API in queue mode (needs REDIS_URL)', load: () => import('./commands/api.js') },
  worker: { summary: 'a queue worker process (needs REDIS_URL)', load: () => import('./commands/worker.js') },
  bench: { summary: 'benchmarks: bench model|editor|service', load: () => import('./commands/bench.js') },
  dataset: { summary: 'render a labelled facesjs portrait dataset', load: () => import('./commands/dataset.js') },
  edit: { summary: 'encode a photo, paint a stroke, write the edited PNG', load: () => import('./commands/edit.js') },
  sample: { summary: 'a PNG grid of samples G(z)', load: () => import('./commands/sample.js') },
  train: { summary: 'train an IAN (resumable; samples, logs, checkpoints)', load: () => import('./commands/train.js') },
  classifier: { summary: 'train / evaluate the attribute classifier used by eval', load: () => import('./commands/classifier.js') },
  eval: { summary: "the paper's Table 2 measures for IAN checkpoints (pixel, feature, trait, inception)", load: () => import('./commands/eval.js') },
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`)
  return `usage: npe <command> [flags]\n\ncommands:\n${lines.join('\n')}\n\nRun 'npe <command> --help' for a command's flags.`
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage())
    return name ? 0 : 2
  }
  const command = COMMANDS[name]
  if (!command) {
    console.error(`npe: unknown command '${name}'\n\n${usage()}`)
    return 2
  }
  const mod = await command.load()
  return mod.run(rest)
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err))
    process.exitCode = 1
  },
)
