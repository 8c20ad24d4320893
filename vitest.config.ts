import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Suites start real servers on ephemeral ports; two workers suit a two-core machine.
    maxWorkers: 2
  }
})
