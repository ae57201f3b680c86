/** `--env K=V` arguments (repeatable) as an environment object; the value may contain `=`. */
export function envArgs(list: string[]): Record<string, string> {
  return Object.fromEntries(
    list.map((kv) => {
      const at = kv.indexOf('=');
      if (at <= 0) throw new Error(`--env expects NAME=value, got ${JSON.stringify(kv)}`);
      return [kv.slice(0, at), kv.slice(at + 1)];
    }),
  );
}
