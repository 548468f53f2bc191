// ESM TypeScript specs with ts-jest; run with:
//   NODE_OPTIONS=--experimental-vm-modules npx jest -c examples/testing/jest/jest.config.js
/** @type {import('jest').Config} */
export default {
  rootDir: '.',
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  testMatch: ['**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: '<rootDir>/../tsconfig.json' }],
  },
  // Each fault test waits a few dead-peer timeouts at most.
  testTimeout: 30_000,
};
