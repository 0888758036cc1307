// The demo app is plain JavaScript outside the TypeScript project (a tsconfig.json here
// would be read as a manifest by `strata apply -f examples/demo/`), so it is linted
// without type information: ESLint's and typescript-eslint's strict syntactic rules.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(js.configs.recommended, tseslint.configs.strict, {
  files: ['**/*.mjs', '**/*.js'],
  extends: [tseslint.configs.disableTypeChecked],
  languageOptions: {
    sourceType: 'module',
    ecmaVersion: 2022,
    parserOptions: { tsconfigRootDir: import.meta.dirname },
  },
});
