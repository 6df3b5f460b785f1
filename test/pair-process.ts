export * from '../bindings/cli/node-process.js';
