// Writes build/version.json (or the file named as the first argument) at build time: the package version and the commit it was built from, so a built tree (or an
// image, which has no .git) can say which weft it is. WEFT_COMMIT, when set, is the commit (the image build passes it in);
// otherwise git is asked; outside a checkout the commit is null. Uncommitted changes to tracked files mark it "-dirty".
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const git = (...args) => {
  try {
    return execFileSync("git", ["-C", root, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
};

function commit() {
  const given = process.env.WEFT_COMMIT?.trim();
  if (given) {
    if (!/^[0-9a-f]{7,40}(-dirty)?$/.test(given)) throw new Error(`WEFT_COMMIT=${JSON.stringify(given)}: expected a git commit hash`);
    return given;
  }
  const head = git("rev-parse", "--short=7", "HEAD");
  if (!head) return null;
  return git("status", "--porcelain", "--untracked-files=no") ? `${head}-dirty` : head;
}

const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
const info = { version, commit: commit() };
const out = process.argv[2] ?? join(root, "build", "version.json");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(info) + "\n");
