// Types of scripts/bundle-dist.mjs for the TypeScript that imports it (bench/agent-process.ts).
export declare const BUNDLED: string[];
export declare function bundleDist(dist: string): Promise<void>;
