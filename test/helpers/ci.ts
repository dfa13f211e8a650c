// One rule for tests that need an outside tool (chromium, socat, zbarimg, gpiod, systemd-analyze):
// on a developer's laptop without it they are skipped; in CI they must have run, so a missing tool
// is an error that names the Debian package to install.

export const IN_CI = ['true', '1'].includes((process.env.CI ?? '').toLowerCase());

/** true when the tool is absent and the tests may be skipped; throws in CI. */
export function skipWithout(present: boolean, tool: string, debianPackage: string): boolean {
  if (present) return false;
  if (IN_CI) throw new Error(`${tool} is missing: CI must \`apt-get install ${debianPackage}\` (a missing tool fails CI, it is never skipped)`);
  return true;
}
