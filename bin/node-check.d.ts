// Types of bin/node-check.js (plain JavaScript so any Node can parse it before the version check).
export declare const MIN_NODE_MAJOR: number;
export declare function readOsRelease(path?: string): { codename: string; pretty: string };
export declare function howToGetNode(major: number, os: { codename: string; pretty: string }): string;
export declare function nodeProblem(
  root: URL,
  versions?: { node: string; modules: string },
  os?: { codename: string; pretty: string },
): string | undefined;
