import { describe, expect, test } from 'vitest';
import { ConfigError, OPTIONS, camel, checkCombinations, loadConfig, parseBool, parseRemapExit, parseRewrite, type Config } from '../../src/config.js';

const SIG = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, USR1: 10, USR2: 12, TERM: 15 } as const;

const DEFAULTS: Config = {
  dir: null,
  dumpSignal: SIG.USR2,
  afterDump: 'exit',
  checkpointOnTerm: false,
  interval: null,
  socket: '/dev/shm/stasis.sock',
  keep: 2,
  onRestoreFailure: 'fresh',
  minPid: 10000,
  criu: 'criu',
  criuDumpOpts: [],
  criuRestoreOpts: [],
  criuTimeout: 600_000,
  lazy: false,
  tcp: 'off',
  fileLocks: false,
  extUnixSockets: false,
  preserve: [],
  preserveExclude: [],
  preserveLimit: 256 * 2 ** 20,
  ghostLimit: 64 * 2 ** 20,
  appVersion: '',
  logLevel: 'info',
  logFormat: 'auto',
  signalGroup: false,
  rewrite: new Map(),
  remapExit: new Map(),
  subreaper: true,
  grace: 5000,
  store: null,
  storeTemplate: null,
  s3Endpoint: null,
  compress: 'zstd',
  compressLevel: 3,
  encryptionKeyFile: null,
};

/** For every option: a raw value that is valid and not the default, and what it parses to. */
const GOOD: Record<keyof Config, readonly [string, unknown]> = {
  dir: ['/var/lib/stasis', '/var/lib/stasis'],
  dumpSignal: ['SIGUSR1', SIG.USR1],
  afterDump: ['continue', 'continue'],
  checkpointOnTerm: ['true', true],
  interval: ['5m', 300_000],
  socket: ['/run/stasis/control.sock', '/run/stasis/control.sock'],
  keep: ['5', 5],
  onRestoreFailure: ['exit', 'exit'],
  minPid: ['0', 0],
  criu: ['/opt/criu/bin/criu', '/opt/criu/bin/criu'],
  criuDumpOpts: [`--ghost-limit 10M --external 'mnt[]:m'`, ['--ghost-limit', '10M', '--external', 'mnt[]:m']],
  criuRestoreOpts: ['-v4', ['-v4']],
  criuTimeout: ['off', null],
  lazy: ['true', true],
  tcp: ['established', 'established'],
  fileLocks: ['1', true],
  extUnixSockets: ['on', true],
  preserve: ['/var/lib/app/db.sqlite, /var/spool/app', ['/var/lib/app/db.sqlite', '/var/spool/app']],
  preserveExclude: ['/tmp/cache,**/*.pid', ['/tmp/cache', '**/*.pid']],
  preserveLimit: ['1.5GiB', 1.5 * 2 ** 30],
  ghostLimit: ['512k', 512 * 1024],
  appVersion: ['1.2.3', '1.2.3'],
  logLevel: ['debug', 'debug'],
  logFormat: ['json', 'json'],
  signalGroup: ['yes', true],
  rewrite: ['TERM:QUIT,USR1:0', new Map([[SIG.TERM, SIG.QUIT], [SIG.USR1, 0]])],
  remapExit: ['143,130:1', new Map([[143, 0], [130, 1]])],
  subreaper: ['off', false],
  grace: ['1.5s', 1500],
  store: ['s3://my-bucket/pods/{hostname}/', { bucket: 'my-bucket', prefix: 'pods/{hostname}' }],
  storeTemplate: ['s3://warm.templates', { bucket: 'warm.templates', prefix: '' }],
  s3Endpoint: ['http://rgw.storage:7480/', 'http://rgw.storage:7480'],
  compress: ['none', 'none'],
  compressLevel: ['19', 19],
  encryptionKeyFile: ['/run/secrets/stasis/key', '/run/secrets/stasis/key'],
};

/** For every option that can be wrong: bad values, and words its "allowed" text must contain. */
const BAD: Partial<Record<keyof Config, { readonly values: readonly string[]; readonly allowed: readonly string[] }>> = {
  dir: { values: ['relative/dir', './x'], allowed: ['absolute path'] },
  dumpSignal: { values: ['KILL', 'STOP', 'CHLD', 'nope', '0', '32', 'SIGRTMIN'], allowed: ['USR2', 'none'] },
  afterDump: { values: ['stop', ''], allowed: ['continue', 'exit'] },
  checkpointOnTerm: { values: ['sure', '2'], allowed: ['true', 'false'] },
  interval: { values: ['500ms', '0', 'hourly', '-5m'], allowed: ['at least 1s', 'off'] },
  socket: { values: ['control.sock', ''], allowed: ['absolute path'] },
  keep: { values: ['0', '1001', '-1', '2.5', 'two', ''], allowed: ['1', '1000'] },
  onRestoreFailure: { values: ['retry'], allowed: ['fresh', 'exit'] },
  minPid: { values: ['-1', '4194304', '1e4', 'x'], allowed: ['0', '4194303'] },
  criu: { values: ['', '   '], allowed: ['non-empty'] },
  criuDumpOpts: { values: [`--external 'mnt[]`, '"unterminated', 'trailing\\'], allowed: ['quotes'] },
  criuRestoreOpts: { values: [`'x`], allowed: ['quotes'] },
  criuTimeout: { values: ['500ms', '0', 'never', '700h'], allowed: ['at least 1s', 'at most 596h', 'off'] },
  lazy: { values: ['lazy', '2'], allowed: ['true', 'false'] },
  tcp: { values: ['on', 'established,close'], allowed: ['established', 'close', 'off'] },
  fileLocks: { values: ['locks'], allowed: ['true', 'false'] },
  extUnixSockets: { values: ['maybe'], allowed: ['true', 'false'] },
  preserve: { values: ['relative/file', '/a,,/b', '/a,'], allowed: ['absolute paths'] },
  preserveExclude: { values: ['*.log', '/a,tmp/*'], allowed: ['absolute paths or globs'] },
  preserveLimit: { values: ['', 'lots', '-1M', '10X', '2TiB', '5 M B'], allowed: ['64MiB', 'at most 1TiB'] },
  ghostLimit: { values: ['', '1T', 'big'], allowed: ['64MiB', 'at most 2GiB'] },
  logLevel: { values: ['verbose', ''], allowed: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] },
  logFormat: { values: ['xml'], allowed: ['json', 'pretty', 'auto'] },
  signalGroup: { values: ['maybe', '2', ''], allowed: ['true', 'false'] },
  rewrite: { values: ['TERM', 'TERM:', 'TERM:QUIT:HUP', 'KILL:TERM', 'FOO:TERM', 'TERM:BAR', 'TERM:QUIT,'], allowed: ['FROM:TO', 'TERM:QUIT'] },
  remapExit: { values: ['256', '1:256', '-1', 'x', '143:', '1,,2'], allowed: ['0-255'] },
  subreaper: { values: ['enable'], allowed: ['true', 'false'] },
  grace: { values: ['5x', '-1s', 'soon', '', '1e3', '5 s'], allowed: ['500ms', '5s'] },
  store: { values: ['bucket/prefix', 's3://', 's3://UPPER/x', 's3://ab', 's3://b-b/a//b', 's3://b-b/../x', 's3://b-b/{pod}'], allowed: ['s3://BUCKET/PREFIX', '{hostname}'] },
  storeTemplate: { values: ['https://bucket/x'], allowed: ['s3://BUCKET/PREFIX'] },
  s3Endpoint: { values: ['rgw:7480', 'ftp://x', 'http://'], allowed: ['http://', 'https://'] },
  compress: { values: ['gzip', ''], allowed: ['zstd', 'none'] },
  compressLevel: { values: ['0', '20', 'max', ''], allowed: ['1', '19'] },
  encryptionKeyFile: { values: ['key.txt'], allowed: ['absolute path'] },
};

/** Options that accept any string at all. */
const ANY_VALUE = new Set<keyof Config>(['appVersion']);

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('OPTIONS table', () => {
  test('covers every Config key once, with unique env vars and flags named STASIS_*/kebab-case', () => {
    const keys = OPTIONS.map((option) => option.key);
    expect([...keys].sort()).toEqual(Object.keys(DEFAULTS).sort());
    expect(new Set(OPTIONS.map((option) => option.env)).size).toBe(OPTIONS.length);
    expect(new Set(OPTIONS.map((option) => option.flag)).size).toBe(OPTIONS.length);
    for (const option of OPTIONS) {
      expect(option.env).toMatch(/^STASIS_[A-Z][A-Z0-9_]*$/);
      expect(option.flag).toMatch(/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/);
    }
  });

  test('the test tables cover every option', () => {
    expect(Object.keys(GOOD).sort()).toEqual(Object.keys(DEFAULTS).sort());
    const canBeBad = OPTIONS.map((option) => option.key).filter((key) => !ANY_VALUE.has(key));
    expect(Object.keys(BAD).sort()).toEqual([...canBeBad].sort());
  });

  test('camel() turns a flag into its commander key', () => {
    expect(camel('criu-dump-opts')).toBe('criuDumpOpts');
    expect(camel('grace')).toBe('grace');
  });
});

describe('loadConfig', () => {
  test('no env and no flags: the defaults', () => {
    expect(loadConfig({})).toEqual(DEFAULTS);
  });

  test('the result is frozen', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { keep: number }).keep = 9;
    }).toThrow(TypeError);
  });

  test('unrelated variables are ignored', () => {
    expect(loadConfig({ HOME: '/root', STASIS_UNKNOWN: 'x', stasis_grace: 'bad' })).toEqual(DEFAULTS);
  });

  describe.each(OPTIONS.map((option) => [option.env, option] as const))('%s', (_env, option) => {
    const [raw, parsed] = GOOD[option.key];

    test('is read from the environment', () => {
      const config = loadConfig({ [option.env]: raw });
      expect(config[option.key]).toEqual(parsed);
      // and nothing else changes
      expect({ ...config, [option.key]: DEFAULTS[option.key] }).toEqual(DEFAULTS);
    });

    test(`is read from --${option.flag}, and the flag wins over the variable`, () => {
      expect(loadConfig({}, { [camel(option.flag)]: raw })[option.key]).toEqual(parsed);
      const envRaw = option.kind === 'bool' ? String(!parsed) : String(defaultOrRaw(option.key));
      expect(loadConfig({ [option.env]: envRaw }, { [camel(option.flag)]: raw })[option.key]).toEqual(parsed);
    });

    test('a flag left undefined falls back to the variable', () => {
      expect(loadConfig({ [option.env]: raw }, { [camel(option.flag)]: undefined })[option.key]).toEqual(parsed);
    });

    if (option.kind === 'bool') {
      test('boolean flags (--x / --no-x) arrive as booleans and win over the variable', () => {
        expect(loadConfig({ [option.env]: 'false' }, { [camel(option.flag)]: true })[option.key]).toBe(true);
        expect(loadConfig({ [option.env]: 'true' }, { [camel(option.flag)]: false })[option.key]).toBe(false);
      });
    }

    const bad = BAD[option.key];
    if (bad === undefined) {
      test('accepts any value', () => {
        for (const value of ['', ' ', 'x y', '"quoted"', '\u00e9\n']) expect(loadConfig({ [option.env]: value })[option.key]).toBe(value);
      });
    } else {
      test.each(bad.values.map((value) => [JSON.stringify(value), value]))('bad value %s: ConfigError naming the variable, the value and what is allowed', (_shown, value) => {
        const error = configError(() => loadConfig({ [option.env]: value }));
        expect(error.source).toBe(option.env);
        expect(error.value).toBe(value);
        expect(error.message).toContain(`${option.env}=${JSON.stringify(value)}`);
        expect(error.message).toContain(error.allowed);
        for (const word of bad.allowed) expect(error.allowed).toContain(word);
      });

      test('a bad flag value names the flag', () => {
        const value = bad.values[0] as string;
        const error = configError(() => loadConfig({ [option.env]: raw }, { [camel(option.flag)]: value }));
        expect(error.source).toBe(`--${option.flag}`);
        expect(error.message).toContain(`--${option.flag}=${JSON.stringify(value)}`);
      });

      test('a good flag wins over a bad variable of the same option (the variable is not parsed)', () => {
        expect(loadConfig({ [option.env]: bad.values[0] as string }, { [camel(option.flag)]: raw })[option.key]).toEqual(parsed);
      });
    }
  });

  test('STASIS_STORE needs STASIS_DIR, STASIS_STORE_TEMPLATE needs STASIS_STORE: the option is named', () => {
    const store = { STASIS_STORE: 's3://my-bucket/p' };
    expect(configError(() => checkCombinations(loadConfig(store), store)).message).toMatch(/^STASIS_STORE="s3:\/\/my-bucket\/p" is not valid: expected STASIS_DIR to be set too/);
    const flags = { storeTemplate: 's3://my-bucket/t' };
    expect(configError(() => checkCombinations(loadConfig({ STASIS_DIR: '/x' }, flags), {}, flags)).source).toBe('--store-template');
    const both = { STASIS_DIR: '/x', ...store, STASIS_STORE_TEMPLATE: 's3://my-bucket/t' };
    expect(() => checkCombinations(loadConfig(both), both)).not.toThrow();
  });

  test('the first bad option is reported, in table order', () => {
    const error = configError(() => loadConfig({ STASIS_GRACE: 'x', STASIS_KEEP: 'y' }));
    expect(error.source).toBe('STASIS_KEEP');
  });
});

function defaultOrRaw(key: keyof Config): string {
  // a valid env value that differs from GOOD's, to see the flag win
  const other: Partial<Record<keyof Config, string>> = {
    dir: '/other', dumpSignal: 'HUP', afterDump: 'exit', keep: '9', onRestoreFailure: 'fresh', minPid: '20', criu: 'other-criu',
    criuDumpOpts: '--other', criuRestoreOpts: '--other', tcp: 'close', appVersion: 'other', logLevel: 'warn', logFormat: 'pretty',
    rewrite: 'HUP:INT', remapExit: '1:2', grace: '9s', store: 's3://other-bucket/x', storeTemplate: 's3://other-bucket/t',
    s3Endpoint: 'https://s3.example', compress: 'zstd', compressLevel: '5', encryptionKeyFile: '/other/key',
  };
  return other[key] ?? '';
}

describe('parseBool', () => {
  test.each(['1', 'true', 'TRUE', ' yes ', 'on', 'On'])('%j is true', (raw) => expect(parseBool(raw)).toBe(true));
  test.each(['0', 'false', 'False', 'no', ' off'])('%j is false', (raw) => expect(parseBool(raw)).toBe(false));
  test.each(['', 'y', 'n', '2', 'enabled'])('%j is refused', (raw) => expect(() => parseBool(raw)).toThrow(/true or false/));
});

describe('parseRewrite', () => {
  test('pairs of names or numbers, with or without SIG, any case and spacing', () => {
    expect(parseRewrite('TERM:QUIT,USR1:0')).toEqual(new Map([[SIG.TERM, SIG.QUIT], [SIG.USR1, 0]]));
    expect(parseRewrite(' sigterm : 3 , 1:int ')).toEqual(new Map([[SIG.TERM, SIG.QUIT], [SIG.HUP, SIG.INT]]));
  });
  test('empty or blank: no rewriting', () => {
    expect(parseRewrite('')).toEqual(new Map());
    expect(parseRewrite('  ')).toEqual(new Map());
  });
  test('TO may be any signal (even KILL), FROM must be one stasis can receive and forward', () => {
    expect(parseRewrite('TERM:KILL')).toEqual(new Map([[SIG.TERM, SIG.KILL]]));
    for (const from of ['KILL', 'STOP', 'CHLD', 'SEGV']) expect(() => parseRewrite(`${from}:TERM`)).toThrow(/FROM:TO/);
  });
  test('a later pair for the same signal wins', () => {
    expect(parseRewrite('TERM:QUIT,TERM:INT')).toEqual(new Map([[SIG.TERM, SIG.INT]]));
  });
  test.each(['TERM', 'TERM:', ':TERM', 'TERM:QUIT:HUP', 'TERM:QUIT,', 'FOO:TERM', 'TERM:32', '0:TERM', 'TERM:00'])('%j is refused', (raw) => {
    expect(() => parseRewrite(raw)).toThrow(/FROM:TO/);
  });
});

describe('parseRemapExit', () => {
  test('CODE means CODE:0, CODE:TO maps to TO', () => {
    expect(parseRemapExit('143')).toEqual(new Map([[143, 0]]));
    expect(parseRemapExit('143:0, 130 : 1,0:255')).toEqual(new Map([[143, 0], [130, 1], [0, 255]]));
  });
  test('empty: no remapping', () => {
    expect(parseRemapExit('')).toEqual(new Map());
  });
  test.each(['256', '1:256', '1000', '-1', 'x', '143:', ':1', '1,,2', '1:2:3', '1.5'])('%j is refused', (raw) => {
    expect(() => parseRemapExit(raw)).toThrow(/0-255/);
  });
});
