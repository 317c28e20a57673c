/** Batch-size histogram buckets (upper bounds) shared by the workers and the agent's metrics; the last catches the rest. */
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128];
