// A tiny explicit state machine: named states, named events, and a table of legal moves.
// Anything not in the table is an IllegalTransition, which callers log and refuse: a vend that
// "jumps" from awaiting_payment to dispensing is a bug we want loudly, not a motor pulse.

export class IllegalTransition extends Error {
  override name = 'IllegalTransition';
  constructor(
    readonly machine: string,
    readonly from: string,
    readonly event: string,
  ) {
    super(`${machine}: event "${event}" is not allowed in state "${from}"`);
  }
}

export type TransitionTable<S extends string, E extends string> = {
  readonly [state in S]: Partial<Record<E, S>>;
};

export interface StateMachine<S extends string, E extends string> {
  readonly name: string;
  readonly states: readonly S[];
  readonly terminal: readonly S[];
  /** the next state, or IllegalTransition */
  next(from: S, event: E): S;
  can(from: S, event: E): boolean;
  isTerminal(state: S): boolean;
}

export function defineMachine<S extends string, E extends string>(
  name: string,
  table: TransitionTable<S, E>,
): StateMachine<S, E> {
  const states = Object.keys(table) as S[];
  const terminal = states.filter((s) => Object.keys(table[s]).length === 0);
  return {
    name,
    states,
    terminal,
    next(from, event) {
      const to = table[from]?.[event];
      if (to === undefined) throw new IllegalTransition(name, from, event);
      return to;
    },
    can(from, event) {
      return table[from]?.[event] !== undefined;
    },
    isTerminal(state) {
      return terminal.includes(state);
    },
  };
}
