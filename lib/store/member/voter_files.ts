// The files a voter holds and a learner does not: <data-dir>/pki/ca.key (so any voter can sign)
// and <data-dir>/admin-credential (its own admin credential). A member keeps them in step with
// its role: when it is a voter it writes the CA key from the replicated copy and, if it has no
// admin credential yet, creates one, has its hash recorded (only the hash leaves the node), and
// only then writes the file; when it stops being a voter it removes both.
import { join } from "node:path";
import { CA_KEY_FILE, PKI_DIR } from "../../pki/ca.ts";
import {
  ADMIN_CREDENTIAL_FILE,
  createCredential,
  hashCredential,
  readCredential,
  writeCredential,
} from "../../pki/credential.ts";
import { ensureDir, writeTextFileAtomic } from "../../fs_atomic.ts";
import type { Logger } from "../../log.ts";

export interface VoterFilesDeps {
  dataDir: string;
  /** The CA key PEM from the replicated data (null until it is known). */
  caKeyPem(): string | null;
  /** Records the admin credential's hash (locally on the leader, else through it). */
  registerAdmin(hash: string): Promise<void>;
  log: Logger;
}

export class VoterFiles {
  #busy = false;
  #was: boolean | undefined;

  constructor(private readonly d: VoterFilesDeps) {}

  /** Brings the files in line with the role; cheap when nothing changes. */
  async sync(isVoter: boolean): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      if (isVoter) await this.#becomeVoter();
      else if (this.#was !== false) await this.#stopVoting();
      this.#was = isVoter;
    } catch (e) {
      this.d.log("warn", "voter_files_failed", { error: (e as Error).message });
    } finally {
      this.#busy = false;
    }
  }

  async #becomeVoter(): Promise<void> {
    const keyPath = join(this.d.dataDir, PKI_DIR, CA_KEY_FILE);
    const adminPath = join(this.d.dataDir, ADMIN_CREDENTIAL_FILE);
    if (this.#was === true) return;
    const keyPem = this.d.caKeyPem();
    if (keyPem !== null && !(await exists(keyPath))) {
      await ensureDir(join(this.d.dataDir, PKI_DIR));
      await writeTextFileAtomic(keyPath, keyPem, 0o600);
    }
    if ((await readCredential(adminPath)) === null) {
      const admin = createCredential(true);
      await this.d.registerAdmin(hashCredential(admin));
      await writeCredential(adminPath, admin);
      this.d.log("info", "admin_credential_created", { file: adminPath });
    }
    if (keyPem === null) return; // try again for the key on the next sync
    this.#was = true;
  }

  async #stopVoting(): Promise<void> {
    for (const f of [join(PKI_DIR, CA_KEY_FILE), ADMIN_CREDENTIAL_FILE]) {
      try {
        await Deno.remove(join(this.d.dataDir, f));
        this.d.log("info", "voter_file_removed", { file: f });
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
