// The allocation search's table in a run database (an `allocate` run folder holds a run store like `search`'s, with
// the same lock, identity check and recognition): one row per finished generation, committed the moment it ends,
// so a kill -9 loses at most the generation in flight. Created on first use.
using System.Globalization;

namespace PrunerZero.Search;

public sealed partial class RunStore
{
    void EnsureAllocationTable() => Exec("""
        CREATE TABLE IF NOT EXISTS allocation_generations (
            generation INTEGER PRIMARY KEY, levels TEXT NOT NULL, loss REAL, evaluations INTEGER NOT NULL,
            windows_spent INTEGER NOT NULL, created_utc TEXT NOT NULL);
        """);

    public List<AllocationGeneration> LoadGenerations()
    {
        lock (_lock)
        {
            EnsureAllocationTable();
            var all = new List<AllocationGeneration>();
            using var cmd = Cmd("SELECT generation, levels, loss, evaluations, windows_spent FROM allocation_generations ORDER BY generation");
            using var r = cmd.ExecuteReader();
            while (r.Read())
                all.Add(new AllocationGeneration(r.GetInt32(0), r.GetString(1).Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray(),
                    r.IsDBNull(2) ? double.NaN : r.GetDouble(2), r.GetInt32(3), r.GetInt64(4)));
            return all;
        }
    }

    public void AddGeneration(AllocationGeneration g)
    {
        lock (_lock)
        {
            EnsureAllocationTable();
            using var cmd = Cmd("""
                INSERT INTO allocation_generations (generation, levels, loss, evaluations, windows_spent, created_utc)
                VALUES ($g, $l, $loss, $e, $w, $t)
                """, ("$g", g.Generation), ("$l", string.Join(",", g.Levels.Select(v => v.ToString(CultureInfo.InvariantCulture)))),
                ("$loss", Finite(g.Loss)), ("$e", g.Evaluations), ("$w", g.WindowsSpent),
                ("$t", DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture)));
            cmd.ExecuteNonQuery();
        }
    }
}
