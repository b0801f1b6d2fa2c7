// A small corpus and task for the CLI tests: 120 one-line hotel reviews
// (corpus.jsonl, {"text"}) and 40 sentiment questions on them (task.jsonl,
// {"context", "choices", "label"}).
//   node review_task.js <corpus.jsonl> <task.jsonl>
const pos = ['good', 'great', 'fine', 'nice'], neg = ['bad', 'awful', 'poor', 'sad'];
const corpus = [], task = [];
for (let i = 0; i < 120; i++) {
  const p = i % 2 == 0, w = (p ? pos : neg)[i % 4];
  corpus.push(JSON.stringify({ text: 'review: the room was ' + w + ' and the staff ' + w + '.' }));
  task.push(JSON.stringify({ context: 'review: the room was ' + w + '\nsentiment:',
                             choices: [' positive', ' negative'], label: p ? 0 : 1 }));
}
require('fs').writeFileSync(process.argv[2], corpus.join('\n') + '\n');
require('fs').writeFileSync(process.argv[3], task.slice(0, 40).join('\n') + '\n');
