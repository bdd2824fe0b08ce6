// The run database (SQLite, WAL). Everything needed to resume a run killed at any moment:
//   params      (key, value)                  the run's identity; a resume with different values is refused
//   evaluations (one row per canonical form)  every screened candidate, with its full re-check when made;
//                                              mask_fingerprint (when the fitness makes one) and same_mask_as:
//                                              the id of the evaluation whose fitness a same-mask row copied;
//                                              screen_cut (Bound/Stage) with screen_bound, screen_bar, screen_seen and
//                                              screen_windows for a screen stopped early (screen_ppl is then NULL);
//                                              screen_tokens / full_tokens: tokens of the forward passes it took
//   population  (iteration, rank, eval_id)    the population after each iteration (0 = initial)
//   history     (iteration, best, median, …)  what the plot and history.csv show
//   baselines   (name, …)                     magnitude / wanda / pruner-zero through the same fitness
//   transfer    (model_sha256, canonical, …)  the leaders and baselines on a second model (RunStore.Transfer.cs)
//   evaluation_workers (subject, kind, worker) which cluster worker made each screen / full result
//                                              (subject: the canonical form, or "baseline:NAME")
// Each evaluation is committed on its own (autocommit, synchronous=FULL) the moment it finishes, so a
// kill -9 loses at most the evaluations in flight. Resume replays the deterministic search from the
// start, taking fitness from here instead of calling the fitness again.
using System.Globalization;
using Microsoft.Data.Sqlite;
using PrunerZero.Kernels;

namespace PrunerZero.Search;

/// <summary>An evaluation as stored.</summary>
public sealed record StoredEvaluation(
    long Id, string Canonical, string Generated, int Iteration, int Slot, int Attempt,
    long? Parent1, long? Parent2, FitnessResult Screen, FitnessResult? Full)
{
    /// <summary>Hash of the candidate's pruning masks (null: the fitness makes none, or the metric is invalid).</summary>
    public string? Fingerprint { get; init; }
    /// <summary>Set on a "same mask" row: the evaluation whose fitness it copied without a forward pass.</summary>
    public long? SameMaskAs { get; init; }
}

/// <summary>Which worker evaluated a candidate (its canonical form) or a baseline ("baseline:NAME"), for the screen or the full check.</summary>
public sealed record WorkerAssignment(string Subject, string Kind, string Worker);

public sealed class RunParametersMismatchException(string message) : UserError(message);

/// <summary>The run folder cannot be used as asked: a run already there, one in use by another process, a database that is not a run's.</summary>
public sealed class RunStoreException(string message, Exception? inner = null) : UserError(message, inner);

public sealed partial class RunStore : IDisposable
{
    public const string FileName = "search.db";
    /// <summary>Held (an exclusive OS lock on RUN/search.lock) for as long as a store is open: one process per run.</summary>
    public const string LockFileName = "search.lock";
    readonly SqliteConnection _db;
    readonly FileStream? _runLock;
    readonly Lock _lock = new();

    RunStore(SqliteConnection db, FileStream? runLock)
    {
        _db = db;
        _runLock = runLock;
    }

    /// <summary>
    /// Takes the run folder's lock: an exclusive lock on search.lock (FileShare.None: flock on Unix, a sharing
    /// lock on Windows), released by the OS when the process ends however it ends, so a killed run never leaves
    /// a stale lock. Refused clearly while another process (or another store in this one) holds it.
    /// </summary>
    public static FileStream AcquireLock(string runDir)
    {
        string path = Path.Combine(runDir, LockFileName);
        try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new RunStoreException($"{runDir} is in use by another search (the lock {path} is held); wait for it to finish or stop it first", e);
        }
        catch (UnauthorizedAccessException e) { throw new RunStoreException($"cannot lock {path}: {e.Message}", e); }
    }

    /// <summary>
    /// Opens (resume) or creates the database. Identity parameters must match the stored ones exactly;
    /// keys listed in <paramref name="mutable"/> (e.g. iterations) are updated instead.
    /// </summary>
    /// <param name="upgrades">Per key: maps a value an earlier version stored to today's form before the comparison.</param>
    public static RunStore Open(string path, IReadOnlyDictionary<string, string> parameters, bool resume,
                                IReadOnlySet<string>? mutable = null, IReadOnlyDictionary<string, Func<string, string>>? upgrades = null)
    {
        var runLock = AcquireLock(Path.GetDirectoryName(Path.GetFullPath(path))!);
        RunStore? store = null;
        try
        {
            if (File.Exists(path) && !resume)
                throw new RunStoreException(
                    $"{path} already holds a search run; pass {UserError.P("resume")} to continue it, or choose a new {UserError.P("run")} directory");
            // Recognised read-only first: another program's SQLite file (or an empty one) is refused without a byte changed.
            if (File.Exists(path)) Recognise(path);
            var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
            store = new RunStore(db, runLock);
            db.Open();
            store.Init(path, parameters, mutable ?? new HashSet<string>(), upgrades ?? new Dictionary<string, Func<string, string>>());
            return store;
        }
        catch (SqliteException e)
        {
            Release();
            throw new RunStoreException($"{path} is not a readable search database ({e.Message.Replace('\n', ' ')}); move it away or choose a new {UserError.P("run")} directory", e);
        }
        catch
        {
            Release();
            throw;
        }

        void Release()
        {
            if (store != null) store.Dispose();
            else runLock.Dispose();
        }
    }

    /// <summary>The tables a run has, with the columns every version of this program wrote (later columns are added on resume).</summary>
    static readonly (string Table, string Columns)[] RunTables =
    [
        ("params", "key, value"),
        ("evaluations", "id, canonical, generated, height, canonical_height, size, iteration, slot, attempt, parent1, parent2, " +
                        "screen_valid, screen_ppl, screen_reason, screen_seconds, full_valid, full_ppl, full_reason, full_seconds, created_utc"),
        ("population", "iteration, rank, eval_id"),
        ("history", "iteration, best, median, population, evaluations, duplicates, skipped"),
        ("baselines", "name, expr, canonical, screen_valid, screen_ppl, screen_reason, screen_seconds, full_valid, full_ppl, full_reason, full_seconds"),
    ];

    /// <summary>
    /// Whether <paramref name="path"/> is a run of this program, decided without writing to it: a regular file, an
    /// SQLite database (by its header), opened read-only, intact (quick_check) and holding a run's tables and columns.
    /// Anything else is a <see cref="RunStoreException"/> naming the file and what it is; the file is left as it was.
    /// </summary>
    public static void Recognise(string path)
    {
        string Advice = $"; move it away or choose a new {UserError.P("run")} directory";
        if (Directory.Exists(path)) throw new RunStoreException($"{path} is a folder, not a search database{Advice}");
        var info = new FileInfo(path);
        if (!info.Exists) throw new RunStoreException($"{path} is not a regular file, not a search database{Advice}");
        byte[] head = new byte[16];
        int n;
        try
        {
            // A device or FIFO never reaches the read: FileStream refuses neither, so the length and kind are checked first.
            if ((info.Attributes & (FileAttributes.Device | FileAttributes.Directory)) != 0)
                throw new RunStoreException($"{path} is not a regular file, not a search database{Advice}");
            if (info.Length == 0)
                throw new RunStoreException($"{path} is empty (0 bytes): it holds no search run; delete it to start a new run there, or choose a new {UserError.P("run")} directory");
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            n = fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunStoreException($"cannot read {path}: {e.Message}", e);
        }
        if (n < 16 || System.Text.Encoding.ASCII.GetString(head, 0, 15) != "SQLite format 3")
            throw new RunStoreException($"{path} is not a readable search database (not an SQLite file){Advice}");
        try
        {
            using var db = new SqliteConnection(new SqliteConnectionStringBuilder
                { DataSource = path, Pooling = false, Mode = SqliteOpenMode.ReadOnly }.ToString());
            db.Open();
            using (var cmd = db.CreateCommand())
            {
                cmd.CommandText = "PRAGMA quick_check";
                if (cmd.ExecuteScalar() is not "ok") throw new RunStoreException($"{path} is damaged (SQLite quick_check failed){Advice}");
            }
            var tables = new HashSet<string>(StringComparer.Ordinal);
            using (var cmd = db.CreateCommand())
            {
                cmd.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table'";
                using var r = cmd.ExecuteReader();
                while (r.Read()) tables.Add(r.GetString(0));
            }
            var missing = RunTables.Select(t => t.Table).Where(t => !tables.Contains(t)).ToList();
            if (missing.Count > 0)
                throw new RunStoreException(
                    $"{path} is an SQLite database but not a search run of this program (no table {string.Join(", ", missing)}; it has {(tables.Count == 0 ? "no tables" : string.Join(", ", tables.Order(StringComparer.Ordinal).Take(8)))}){Advice}");
            foreach (var (table, columns) in RunTables)
                using (var cmd = db.CreateCommand())
                {
                    cmd.CommandText = $"SELECT {columns} FROM {table} LIMIT 0";
                    try { using var r = cmd.ExecuteReader(); }
                    catch (SqliteException e)
                    {
                        throw new RunStoreException($"{path} is an SQLite database but not a search run of this program (table {table}: {e.Message.Replace('\n', ' ')}){Advice}", e);
                    }
                }
        }
        catch (SqliteException e)
        {
            throw new RunStoreException($"{path} is not a readable search database ({e.Message.Replace('\n', ' ')}){Advice}", e);
        }
    }

    void Init(string path, IReadOnlyDictionary<string, string> parameters, IReadOnlySet<string> mutable,
              IReadOnlyDictionary<string, Func<string, string>> upgrades)
    {
        Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;");
        Exec("""
            CREATE TABLE IF NOT EXISTS params (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS evaluations (
                id INTEGER PRIMARY KEY, canonical TEXT NOT NULL UNIQUE, generated TEXT NOT NULL,
                height INTEGER NOT NULL, canonical_height INTEGER NOT NULL, size INTEGER NOT NULL,
                iteration INTEGER NOT NULL, slot INTEGER NOT NULL, attempt INTEGER NOT NULL,
                parent1 INTEGER, parent2 INTEGER,
                screen_valid INTEGER NOT NULL, screen_ppl REAL, screen_reason TEXT, screen_seconds REAL NOT NULL,
                full_valid INTEGER, full_ppl REAL, full_reason TEXT, full_seconds REAL,
                created_utc TEXT NOT NULL, mask_fingerprint TEXT, same_mask_as INTEGER);
            CREATE TABLE IF NOT EXISTS population (
                iteration INTEGER NOT NULL, rank INTEGER NOT NULL, eval_id INTEGER NOT NULL,
                PRIMARY KEY (iteration, rank));
            CREATE TABLE IF NOT EXISTS history (
                iteration INTEGER PRIMARY KEY, best REAL, median REAL, population INTEGER NOT NULL,
                evaluations INTEGER NOT NULL, duplicates INTEGER NOT NULL, skipped INTEGER NOT NULL, same_mask INTEGER);
            CREATE TABLE IF NOT EXISTS baselines (
                name TEXT PRIMARY KEY, expr TEXT NOT NULL, canonical TEXT NOT NULL,
                screen_valid INTEGER NOT NULL, screen_ppl REAL, screen_reason TEXT, screen_seconds REAL NOT NULL,
                full_valid INTEGER NOT NULL, full_ppl REAL, full_reason TEXT, full_seconds REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS evaluation_workers (
                subject TEXT NOT NULL, kind TEXT NOT NULL, worker TEXT NOT NULL, PRIMARY KEY (subject, kind));
            """);
        // Runs made before mask fingerprints: the new columns are added (NULL = no fingerprint, not a copy).
        AddColumnIfMissing("evaluations", "mask_fingerprint", "TEXT");
        AddColumnIfMissing("evaluations", "same_mask_as", "INTEGER");
        AddColumnIfMissing("history", "same_mask", "INTEGER");
        // Runs made before early stops and token counts: NULL = not cut, tokens not counted.
        foreach (var (column, type) in new[] { ("screen_cut", "TEXT"), ("screen_bound", "REAL"), ("screen_bar", "REAL"), ("screen_seen", "INTEGER"),
                                                ("screen_windows", "INTEGER"), ("screen_tokens", "INTEGER"), ("full_tokens", "INTEGER") })
            AddColumnIfMissing("evaluations", column, type);
        AddColumnIfMissing("baselines", "screen_tokens", "INTEGER");
        AddColumnIfMissing("baselines", "full_tokens", "INTEGER");
        AddColumnIfMissing("history", "cut", "INTEGER");
        // A file that is SQLite but not a run's (other columns, damaged pages) fails here, not halfway through.
        using (var cmd = Cmd("PRAGMA quick_check"))
            if (cmd.ExecuteScalar() is not "ok") throw new RunStoreException($"{path} is damaged (SQLite quick_check failed); move it away or choose a new {UserError.P("run")} directory");
        foreach (var probe in new[]
                 {
                     "SELECT key, value FROM params LIMIT 0",
                     """
                     SELECT id, canonical, generated, height, canonical_height, size, iteration, slot, attempt, parent1, parent2,
                            screen_valid, screen_ppl, screen_reason, screen_seconds, full_valid, full_ppl, full_reason, full_seconds, created_utc
                       FROM evaluations LIMIT 0
                     """,
                     "SELECT iteration, rank, eval_id FROM population LIMIT 0",
                     "SELECT iteration, best, median, population, evaluations, duplicates, skipped FROM history LIMIT 0",
                     """
                     SELECT name, expr, canonical, screen_valid, screen_ppl, screen_reason, screen_seconds,
                            full_valid, full_ppl, full_reason, full_seconds FROM baselines LIMIT 0
                     """,
                 })
            using (var cmd = Cmd(probe))
            using (var r = cmd.ExecuteReader()) { }
        CheckParams(path, parameters, mutable, upgrades);
    }

    void AddColumnIfMissing(string table, string column, string type)
    {
        bool has = false;
        using (var cmd = Cmd($"PRAGMA table_info({table})"))
        using (var r = cmd.ExecuteReader())
            while (r.Read()) has |= r.GetString(1) == column;
        if (!has) Exec($"ALTER TABLE {table} ADD COLUMN {column} {type}");
    }

    void CheckParams(string path, IReadOnlyDictionary<string, string> parameters, IReadOnlySet<string> mutable,
                     IReadOnlyDictionary<string, Func<string, string>> upgrades)
    {
        var stored = new Dictionary<string, string>();
        using (var cmd = Cmd("SELECT key, value FROM params"))
        using (var r = cmd.ExecuteReader())
            while (r.Read()) stored[r.GetString(0)] = r.GetString(1);
        // An earlier version's form of a value: compared (and, when it matches, stored) in today's form.
        var upgraded = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (k, upgrade) in upgrades)
            if (stored.TryGetValue(k, out var was) && upgrade(was) is var now && now != was)
            {
                stored[k] = now;
                upgraded.Add(k);
            }
        if (stored.Count > 0)
        {
            var diffs = parameters.Keys.Union(stored.Keys).Where(k => !mutable.Contains(k)).Order(StringComparer.Ordinal)
                .Where(k => !(stored.TryGetValue(k, out var s) && parameters.TryGetValue(k, out var p) && s == p))
                .Select(k => $"{k}: stored '{stored.GetValueOrDefault(k, "(none)")}', now '{parameters.GetValueOrDefault(k, "(none)")}'")
                .ToList();
            if (diffs.Count > 0)
                throw new RunParametersMismatchException(
                    $"cannot resume {path}: it was started with different parameters ({string.Join("; ", diffs)}). " +
                    $"Resume with the original parameters, or start a new run in another {UserError.P("run")} directory.");
        }
        foreach (var (k, v) in parameters)
            if (!stored.ContainsKey(k) || mutable.Contains(k) || upgraded.Contains(k))
                using (var cmd = Cmd("INSERT OR REPLACE INTO params (key, value) VALUES ($k, $v)", ("$k", k), ("$v", v)))
                    cmd.ExecuteNonQuery();
    }

    public Dictionary<string, StoredEvaluation> LoadEvaluations()
    {
        lock (_lock)
        {
            var all = new Dictionary<string, StoredEvaluation>(StringComparer.Ordinal);
            using var cmd = Cmd("""
                SELECT id, canonical, generated, iteration, slot, attempt, parent1, parent2,
                       screen_valid, screen_ppl, screen_reason, screen_seconds, full_valid, full_ppl, full_reason, full_seconds,
                       mask_fingerprint, same_mask_as, screen_cut, screen_bound, screen_bar, screen_seen, screen_windows,
                       screen_tokens, full_tokens
                FROM evaluations ORDER BY id
                """);
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                var screen = ReadResult(r, 8) with { Tokens = NullableLong(r, 23) ?? 0 };
                if (!r.IsDBNull(18))
                    screen = screen with
                    {
                        Cut = new ScreenCut(Enum.Parse<CutKind>(r.GetString(18)), r.GetDouble(19), r.GetDouble(20), r.GetInt32(21), r.GetInt32(22)),
                    };
                var full = r.IsDBNull(12) ? null : ReadResult(r, 12) with { Tokens = NullableLong(r, 24) ?? 0 };
                all[r.GetString(1)] = new StoredEvaluation(r.GetInt64(0), r.GetString(1), r.GetString(2), r.GetInt32(3),
                    r.GetInt32(4), r.GetInt32(5), NullableLong(r, 6), NullableLong(r, 7), screen, full)
                {
                    Fingerprint = r.IsDBNull(16) ? null : r.GetString(16), SameMaskAs = NullableLong(r, 17),
                };
            }
            return all;
        }
    }

    /// <summary>Inserts one screened candidate in its own transaction; returns the stored row.</summary>
    public StoredEvaluation AddEvaluation(string canonical, Expr generated, Expr canonicalExpr, int iteration, int slot, int attempt,
                                          long? parent1, long? parent2, FitnessResult screen,
                                          string? fingerprint = null, long? sameMaskAs = null)
    {
        lock (_lock)
        {
            using var cmd = Cmd("""
                INSERT INTO evaluations (canonical, generated, height, canonical_height, size, iteration, slot, attempt,
                    parent1, parent2, screen_valid, screen_ppl, screen_reason, screen_seconds, created_utc, mask_fingerprint, same_mask_as,
                    screen_cut, screen_bound, screen_bar, screen_seen, screen_windows, screen_tokens)
                VALUES ($c, $g, $h, $ch, $s, $it, $sl, $at, $p1, $p2, $v, $ppl, $why, $sec, $t, $fp, $same,
                    $cut, $bound, $bar, $seen, $windows, $tokens);
                SELECT last_insert_rowid();
                """,
                ("$c", canonical), ("$g", generated.ToString()), ("$h", Trees.Height(generated)),
                ("$ch", Trees.Height(canonicalExpr)), ("$s", canonicalExpr.Size), ("$it", iteration), ("$sl", slot),
                ("$at", attempt), ("$p1", parent1), ("$p2", parent2), ("$v", screen.Valid ? 1 : 0),
                ("$ppl", Finite(screen.Perplexity)), ("$why", screen.InvalidReason), ("$sec", screen.Seconds),
                ("$t", DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture)), ("$fp", fingerprint), ("$same", sameMaskAs),
                ("$cut", screen.Cut?.Kind.ToString()), ("$bound", screen.Cut?.Bound), ("$bar", screen.Cut?.Bar),
                ("$seen", screen.Cut?.WindowsSeen), ("$windows", screen.Cut?.Windows), ("$tokens", screen.Tokens));
            long id = (long)cmd.ExecuteScalar()!;
            return new StoredEvaluation(id, canonical, generated.ToString(), iteration, slot, attempt, parent1, parent2, screen, null)
            {
                Fingerprint = fingerprint, SameMaskAs = sameMaskAs,
            };
        }
    }

    public void SetFull(long id, FitnessResult full)
    {
        lock (_lock)
        {
            using var cmd = Cmd("UPDATE evaluations SET full_valid = $v, full_ppl = $ppl, full_reason = $why, full_seconds = $sec, full_tokens = $tok WHERE id = $id",
                ("$v", full.Valid ? 1 : 0), ("$ppl", Finite(full.Perplexity)), ("$why", full.InvalidReason),
                ("$sec", full.Seconds), ("$tok", full.Tokens), ("$id", id));
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Stored population snapshots by iteration (member ids in rank order).</summary>
    public Dictionary<int, List<long>> LoadPopulations()
    {
        lock (_lock)
        {
            var pops = new Dictionary<int, List<long>>();
            using var cmd = Cmd("SELECT iteration, eval_id FROM population ORDER BY iteration, rank");
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                int it = r.GetInt32(0);
                if (!pops.TryGetValue(it, out var l)) pops[it] = l = [];
                l.Add(r.GetInt64(1));
            }
            return pops;
        }
    }

    /// <summary>Writes the population and history row of one iteration in one transaction.</summary>
    public void SaveIteration(int iteration, IReadOnlyList<long> memberIds, HistoryPoint h)
    {
        lock (_lock)
        {
            using var tx = _db.BeginTransaction();
            using (var del = Cmd("DELETE FROM population WHERE iteration = $it", ("$it", iteration)))
            {
                del.Transaction = tx;
                del.ExecuteNonQuery();
            }
            for (int rank = 0; rank < memberIds.Count; rank++)
                using (var cmd = Cmd("INSERT INTO population (iteration, rank, eval_id) VALUES ($it, $r, $id)",
                           ("$it", iteration), ("$r", rank), ("$id", memberIds[rank])))
                {
                    cmd.Transaction = tx;
                    cmd.ExecuteNonQuery();
                }
            using (var cmd = Cmd("""
                INSERT OR REPLACE INTO history (iteration, best, median, population, evaluations, duplicates, skipped, same_mask, cut)
                VALUES ($it, $b, $m, $p, $e, $d, $s, $sm, $cut)
                """, ("$it", iteration), ("$b", Finite(h.Best)), ("$m", Finite(h.Median)), ("$p", h.PopulationSize),
                ("$e", h.Evaluations), ("$d", h.Duplicates), ("$s", h.Skipped), ("$sm", h.SameMask), ("$cut", h.Cut)))
            {
                cmd.Transaction = tx;
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
        }
    }

    public Dictionary<string, BaselineResult> LoadBaselines()
    {
        lock (_lock)
        {
            var all = new Dictionary<string, BaselineResult>(StringComparer.OrdinalIgnoreCase);
            using var cmd = Cmd("""
                SELECT name, expr, screen_valid, screen_ppl, screen_reason, screen_seconds,
                       full_valid, full_ppl, full_reason, full_seconds, screen_tokens, full_tokens FROM baselines
                """);
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                if (!MetricParser.TryParse(r.GetString(1), out var expr, out var error))
                    throw new RunStoreException($"baseline '{r.GetString(0)}' in the run database has an unreadable metric: {error!.Message}");
                all[r.GetString(0)] = new BaselineResult(r.GetString(0), expr!, ReadResult(r, 2) with { Tokens = NullableLong(r, 10) ?? 0 },
                                                         ReadResult(r, 6) with { Tokens = NullableLong(r, 11) ?? 0 });
            }
            return all;
        }
    }

    public void AddBaseline(BaselineResult b)
    {
        lock (_lock)
        {
            using var cmd = Cmd("""
                INSERT OR REPLACE INTO baselines (name, expr, canonical, screen_valid, screen_ppl, screen_reason, screen_seconds,
                    full_valid, full_ppl, full_reason, full_seconds, screen_tokens, full_tokens)
                VALUES ($n, $e, $c, $sv, $sp, $sr, $ss, $fv, $fp, $fr, $fs, $st, $ft)
                """, ("$n", b.Name), ("$e", b.Expr.ToString()), ("$c", Oos.Canonical(b.Expr)),
                ("$sv", b.Screen.Valid ? 1 : 0), ("$sp", Finite(b.Screen.Perplexity)), ("$sr", b.Screen.InvalidReason), ("$ss", b.Screen.Seconds),
                ("$fv", b.Full.Valid ? 1 : 0), ("$fp", Finite(b.Full.Perplexity)), ("$fr", b.Full.InvalidReason), ("$fs", b.Full.Seconds),
                ("$st", b.Screen.Tokens), ("$ft", b.Full.Tokens));
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Records which worker made a result (kind: screen or full). Its own statement, after the result's.</summary>
    public void SetWorker(string subject, string kind, string worker)
    {
        lock (_lock)
        {
            using var cmd = Cmd("INSERT OR REPLACE INTO evaluation_workers (subject, kind, worker) VALUES ($s, $k, $w)",
                ("$s", subject), ("$k", kind), ("$w", worker));
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Every recorded (subject, kind, worker), ordered by subject then kind.</summary>
    public List<WorkerAssignment> LoadWorkers()
    {
        lock (_lock)
        {
            var all = new List<WorkerAssignment>();
            using var cmd = Cmd("SELECT subject, kind, worker FROM evaluation_workers ORDER BY subject, kind");
            using var r = cmd.ExecuteReader();
            while (r.Read()) all.Add(new WorkerAssignment(r.GetString(0), r.GetString(1), r.GetString(2)));
            return all;
        }
    }

    static FitnessResult ReadResult(SqliteDataReader r, int at) => new(
        r.GetInt64(at) != 0,
        r.IsDBNull(at + 1) ? double.NaN : r.GetDouble(at + 1),
        r.IsDBNull(at + 2) ? null : r.GetString(at + 2),
        r.IsDBNull(at + 3) ? 0 : r.GetDouble(at + 3));

    static long? NullableLong(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt64(i);
    static object? Finite(double v) => double.IsFinite(v) ? v : null; // SQLite has no NaN/Inf: stored as NULL

    void Exec(string sql)
    {
        using var cmd = Cmd(sql);
        cmd.ExecuteNonQuery();
    }

    SqliteCommand Cmd(string sql, params (string Name, object? Value)[] args)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v ?? DBNull.Value);
        return cmd;
    }

    public void Dispose()
    {
        _db.Dispose();
        _runLock?.Dispose();
    }
}
