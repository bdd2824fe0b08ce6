// The transfer table of the run database: one row per (transfer model content hash, canonical metric), written the
// moment the evaluation finishes. Created on first use, so run databases made before it existed still open.
using System.Globalization;

namespace PrunerZero.Search;

public sealed partial class RunStore
{
    void EnsureTransferTable() => Exec("""
        CREATE TABLE IF NOT EXISTS transfer (
            model_sha256 TEXT NOT NULL, canonical TEXT NOT NULL, model TEXT NOT NULL, protocol TEXT NOT NULL,
            valid INTEGER NOT NULL, ppl REAL, reason TEXT, seconds REAL NOT NULL, created_utc TEXT NOT NULL,
            PRIMARY KEY (model_sha256, canonical));
        """);

    /// <summary>The stored transfer results on the model with this content hash, by canonical metric.</summary>
    public Dictionary<string, StoredTransfer> LoadTransfers(string modelSha256)
    {
        lock (_lock)
        {
            EnsureTransferTable();
            var all = new Dictionary<string, StoredTransfer>(StringComparer.Ordinal);
            using var cmd = Cmd("SELECT canonical, model, protocol, valid, ppl, reason, seconds FROM transfer WHERE model_sha256 = $h", ("$h", modelSha256));
            using var r = cmd.ExecuteReader();
            while (r.Read()) all[r.GetString(0)] = new StoredTransfer(r.GetString(1), r.GetString(2), ReadResult(r, 3));
            return all;
        }
    }

    public void AddTransfer(string modelSha256, string canonical, StoredTransfer t)
    {
        lock (_lock)
        {
            EnsureTransferTable();
            using var cmd = Cmd("""
                INSERT OR REPLACE INTO transfer (model_sha256, canonical, model, protocol, valid, ppl, reason, seconds, created_utc)
                VALUES ($h, $c, $m, $p, $v, $ppl, $why, $sec, $t)
                """, ("$h", modelSha256), ("$c", canonical), ("$m", t.Model), ("$p", t.Protocol), ("$v", t.Result.Valid ? 1 : 0),
                ("$ppl", Finite(t.Result.Perplexity)), ("$why", t.Result.InvalidReason), ("$sec", t.Result.Seconds),
                ("$t", DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture)));
            cmd.ExecuteNonQuery();
        }
    }
}
