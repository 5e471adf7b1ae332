import { childEnvironment } from '../../config/process-env.js';
import { runActionStep } from './action-step.js';

/** The entry point of action.yml's `Run the task` step (action-step.ts), with the runner's variables. */
process.exitCode = await runActionStep(childEnvironment());
