// ESLint flat config: typescript-eslint's recommended rules, syntax-only (no type-aware rules:
// linting needs no tsc program and stays fast; `tsc --noEmit` does the type checking).
// @eslint/js is not a dependency, so the core rules worth having are listed by hand below.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** Files matching `files` may not import from the named top-level folders of src/. */
function layer(files, forbidden) {
  return {
    files: [files],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: forbidden.map((f) => ({
            regex: `^(\\.\\./)+(src/)?${f.replace('/', '\\/')}/`,
            message: `layering: ${files} may not import from ${f}/ (see eslint.config.js)`,
          })),
        },
      ],
    },
  };
}

export default defineConfig(
  {
    ignores: ['node_modules/**', 'bench/results/**', '.spindle/**', 'tmp/**', 'coverage/**'],
  },
  {
    files: ['**/*.ts', '**/*.js'],
    extends: [tseslint.configs.recommended],
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Core rules that catch real bugs (the useful part of eslint:recommended that
      // TypeScript does not already check).
      'no-debugger': 'error',
      'no-cond-assign': 'error',
      'no-constant-binary-expression': 'error',
      'no-control-regex': 'error',
      'no-empty': ['error', { allowEmptyCatch: true }],
      'no-fallthrough': 'error',
      'no-self-assign': 'error',
      'no-self-compare': 'error',
      'no-sparse-arrays': 'error',
      'no-unsafe-finally': 'error',
      'no-useless-escape': 'error',
      'no-var': 'error',
      'prefer-const': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      // `_`-prefixed names are deliberately unused (callback signatures, destructuring).
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'after-used',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
        },
      ],
      // Type-only imports must say so: type stripping erases only what is marked as a type.
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
    },
  },
  // Layers (DESIGN.md): shared/ is pure and imports no thread's code; workers never import
  // the supervisor nor another kind of worker; the supervisor reaches workers only through
  // wire types in shared/ (and their entry file URLs). A violation fails the lint.
  layer('src/shared/**', ['workers', 'supervisor']),
  layer('src/workers/lun/**', ['supervisor', 'workers/session', 'workers/fabric', 'session', 'fabric']),
  layer('src/workers/session/**', ['supervisor', 'workers/lun', 'workers/fabric', 'lun', 'fabric']),
  layer('src/workers/fabric/**', ['supervisor', 'workers/lun', 'workers/session', 'lun', 'session']),
  layer('src/supervisor/**', ['workers']),
  {
    // Tests build odd inputs on purpose.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
