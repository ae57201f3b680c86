import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { openDatabase } from '../../src/ledger/database.js';
import { GroupCommit } from '../../src/ledger/group-commit.js';
import { tmpDir } from '../helpers/server.js';

async function setup(t: Parameters<typeof tmpDir>[0]) {
  const file = path.join(await tmpDir(t), 'ledger.db');
  const db = openDatabase(file);
  db.exec('CREATE TABLE rows (k TEXT PRIMARY KEY)');
  // A second connection sees only what is committed.
  const other = new Database(file, { readonly: true });
  t.teardown(() => {
    other.close();
    if (db.open) db.close();
  });
  const insert = db.prepare('INSERT INTO rows (k) VALUES (?)');
  const write = db.transaction((k: string, fail = false) => {
    insert.run(k);
    if (fail) throw new Error(`refused ${k}`);
    return `wrote ${k}`;
  });
  const committed = () => (other.prepare('SELECT k FROM rows ORDER BY k').all() as { k: string }[]).map((r) => r.k);
  return { db, group: new GroupCommit(db), write, committed };
}

t.test('writes requested in one turn are one transaction, answered once it is committed', async (t) => {
  const { group, write, committed } = await setup(t);
  const answers = ['a', 'b', 'c'].map((k) => group.run(() => write(k)));
  let settled = false;
  void Promise.all(answers).then(() => (settled = true));
  await Promise.resolve();
  t.same(committed(), [], 'nothing committed within the turn that asked');
  t.notOk(settled, 'and nobody answered');
  t.same(await Promise.all(answers), ['wrote a', 'wrote b', 'wrote c'], 'each caller gets its own result');
  t.same(committed(), ['a', 'b', 'c'], 'visible to another connection when the answers arrive');
  t.same(group.stats, { commits: 1, writes: 3 });

  await group.run(() => write('d'));
  await group.run(() => write('e'));
  t.same(group.stats, { commits: 3, writes: 5 }, 'writes asked for one after another commit one by one');
});

t.test('a write that throws is undone alone; the others in its transaction commit', async (t) => {
  const { group, write, committed } = await setup(t);
  const [a, bad, c] = [group.run(() => write('a')), group.run(() => write('b', true)), group.run(() => write('c'))];
  t.equal(await a, 'wrote a');
  await t.rejects(bad, { message: 'refused b' });
  t.equal(await c, 'wrote c');
  t.same(committed(), ['a', 'c'], "the failed write's row was rolled back to its savepoint");
  const dup = group.run(() => write('a'));
  await t.rejects(dup, { code: 'SQLITE_CONSTRAINT_PRIMARYKEY' }, 'a constraint error reaches its caller');
  t.same(committed(), ['a', 'c']);
});

t.test('a commit that fails rejects every write in it and records none', async (t) => {
  const { db, group, write } = await setup(t);
  const answers = [group.run(() => write('a')), group.run(() => write('b'))];
  db.close();
  for (const answer of answers) await t.rejects(answer, /not open/);
  t.same(group.stats, { commits: 0, writes: 0 });
});
