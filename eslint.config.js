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
    files: ['scripts/**', 'bench/**', 'src/emulator/main.ts', 'src/server.ts', 'src/worker/main.ts'],
    rules: { 'no-console': 'off' }
  }
)
