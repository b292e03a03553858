import type { Config } from '../config.js';
import type { CriuInfo } from '../criu/run.js';
import type { Logger } from '../log.js';
import type { ObjectStore } from '../store/open.js';

/** What a dump or a restore needs to know: settled once at start, when checkpoints are on. */
export interface CheckpointContext {
  readonly config: Config;
  readonly dir: string;
  readonly log: Logger;
  readonly criu: CriuInfo;
  readonly unprivileged: boolean;
  readonly argv: readonly string[];
  /** STASIS_STORE: generations are also uploaded there, and downloaded when STASIS_DIR has none */
  readonly store?: Pick<ObjectStore, 'publish' | 'fetchForRestore'>;
}

/** What a restore needs: it runs beside `criu --version`, so without the probed criu. */
export type RestoreContext = Omit<CheckpointContext, 'criu'>;
