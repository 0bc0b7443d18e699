import { expect } from 'chai';
import fc from 'fast-check';
import { LineSplitter } from '../../../src/kube/watch-stream.ts';

/** The splitting the watch stream did before LineSplitter: the reference it must agree with. */
function reference(chunks: string[]): { lines: string[]; pending: string } {
  const lines: string[] = [];
  let buffered = '';
  for (const chunk of chunks) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (!line) continue;
      lines.push(line);
    }
  }
  return { lines, pending: buffered };
}

function split(chunks: (string | Buffer)[]): { lines: string[]; pending: string } {
  const s = new LineSplitter();
  const lines: string[] = [];
  for (const chunk of chunks) s.push(chunk, (line) => lines.push(line));
  return { lines, pending: s.pending };
}

describe('LineSplitter (watch stream lines)', () => {
  const cases: [string, string[], string[], string][] = [
    ['one event per chunk', ['{"a":1}\n', '{"b":2}\n'], ['{"a":1}', '{"b":2}'], ''],
    ['several events in one chunk', ['{"a":1}\n{"b":2}\n{"c":3}\n'], ['{"a":1}', '{"b":2}', '{"c":3}'], ''],
    ['an event cut across chunks', ['{"a":', '1}', '\n'], ['{"a":1}'], ''],
    ['an unfinished event is held, not handed on', ['{"a":1}\n{"b"'], ['{"a":1}'], '{"b"'],
    ['blank and whitespace lines are skipped', ['\n  \n\t\n{"a":1}\n\r\n'], ['{"a":1}'], ''],
    ['CRLF line ends are trimmed', ['{"a":1}\r\n{"b":2}\r', '\n'], ['{"a":1}', '{"b":2}'], ''],
    ['spaces around an event are trimmed', ['  {"a":1}  \n'], ['{"a":1}'], ''],
    [
      'a non-breaking space or BOM is trimmed as String.trim does',
      ['\ufeff{"a":1}\u00a0\n'],
      ['{"a":1}'],
      '',
    ],
    ['a line that is not an object is handed on as text', ['oops\n'], ['oops'], ''],
    ['a lone brace', ['{\n}\n'], ['{', '}'], ''],
    ['empty chunks', ['', '{"a":1}', '', '\n', ''], ['{"a":1}'], ''],
    [
      'a newline inside a JSON string cannot occur (escaped): \\n stays',
      ['{"s":"x\\ny"}\n'],
      ['{"s":"x\\ny"}'],
      '',
    ],
  ];
  for (const [name, chunks, lines, pending] of cases) {
    it(name, () => {
      expect(split(chunks)).to.deep.equal({ lines, pending });
      expect(split(chunks)).to.deep.equal(reference(chunks));
    });
  }

  it('keeps a UTF-8 character whole when its bytes arrive in two chunks', () => {
    const bytes = Buffer.from('{"a":"€ and 😀"}\n{"b":"é"}\n', 'utf8');
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(split([bytes.subarray(0, cut), bytes.subarray(cut)]).lines, `cut at ${cut}`).to.deep.equal([
        '{"a":"€ and 😀"}',
        '{"b":"é"}',
      ]);
    }
  });

  it('property: for any text cut into any chunks, the same lines as the previous splitting', () => {
    const piece = fc.oneof(
      fc.constantFrom('\n', '\r\n', ' ', '\t', '{', '}', '{"type":"ADDED","object":{}}', '\u00a0', '\ufeff'),
      fc.string(),
    );
    fc.assert(
      fc.property(
        fc.array(piece, { maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (pieces, cuts) => {
          const text = pieces.join('');
          const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          const chunks: string[] = [];
          let from = 0;
          for (const c of at) {
            chunks.push(text.slice(from, c));
            from = c;
          }
          chunks.push(text.slice(from));
          expect(split(chunks)).to.deep.equal(reference(chunks));
          expect(split([text])).to.deep.equal(reference([text]));
          // The same text as UTF-8 bytes cut anywhere (inside a character too) gives the same complete lines.
          const bytes = Buffer.from(text, 'utf8');
          const byteCut = at.length > 0 ? Math.min(at[0] ?? 0, bytes.length) : 0;
          const lines = split([bytes.subarray(0, byteCut), bytes.subarray(byteCut)]).lines;
          expect(lines).to.deep.equal(reference([Buffer.from(text, 'utf8').toString('utf8')]).lines);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
