import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['node_modules/', '.tools/', 'coverage/', 'openapi/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // The service logs through Fastify's pino only; scripts and the emulator's CLI may print.
      'no-console': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error'
    }
  },
  {
    // The playground's ES modules, and the checks the browser tests evaluate in a page, run in the browser.
    files: ['public/**/*.js', 'test/browser/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries([
        'window', 'document', 'sessionStorage', 'fetch', 'Headers', 'URLSearchParams', 'EventSource', 'IntersectionObserver',
        'AbortController', 'DOMException', 'TextDecoderStream', 'Intl', 'CSS', 'Node', 'crypto', 'performance',
        'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'getComputedStyle'
      ].map((name) => [name, 'readonly']))
    }
  },
  {
    files: ['scripts/**', 'bench/**', 'src/emulator/main.ts', 'src/process-entry.ts'],
    rules: { 'no-console': 'off' }
  }
)
