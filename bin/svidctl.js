#!/usr/bin/env node
// Runs the TypeScript source directly (Node 24 strips types); dist/ is only built for the image.
import { main } from '../src/cli/svidctl.ts';

await main(process.argv.slice(2));
