import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseAgentConfigText } from '../src/agent/config.js';
import { parseRelayConfigText } from '../src/relay/config.js';

// The examples in docs/config.md and examples/ are what operators copy: they must stay valid.
describe('example configuration files', () => {
  it('examples/relay.yaml is a valid relay config', () => {
    const c = parseRelayConfigText(readFileSync('examples/relay.yaml', 'utf8'), 'examples/relay.yaml', {});
    expect(c.catalog).toHaveLength(3);
    expect(c.publicUrl).toBe('https://relay.example.com');
  });

  it('examples/agent.yaml is a valid agent config', () => {
    const c = parseAgentConfigText(readFileSync('examples/agent.yaml', 'utf8'), 'examples/agent.yaml');
    expect(c.slots.map((s) => s.sku)).toEqual(['COLA-350', 'AGUA-500', 'ALFAJOR']);
  });

  it('the examples embedded in docs/config.md parse too', () => {
    const doc = readFileSync('docs/config.md', 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const relay = blocks.find((b) => b.includes('publicUrl'));
    const agent = blocks.find((b) => b.includes('kioskId'));
    expect(relay && agent).toBeTruthy();
    expect(() => parseRelayConfigText(relay!, 'docs/config.md relay', {})).not.toThrow();
    expect(() => parseAgentConfigText(agent!, 'docs/config.md agent')).not.toThrow();
  });
});
