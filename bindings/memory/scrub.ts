export interface ScrubOptions { onProgress?: (p: { done: number; total: number }) => void }
export interface ScrubReport { pages: number }
export class Scrubber { constructor(_d: unknown) {} async run(_o: ScrubOptions): Promise<ScrubReport> { return { pages: 0 }; } }
