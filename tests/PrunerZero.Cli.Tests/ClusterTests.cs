using System.Diagnostics;
using System.Text;
using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

/// <summary>
/// Search across processes on the loopback interface (Orleans localhost clustering): two worker processes and a
/// third with a different model, a search process as the client, one worker killed with -9 mid-run. The cluster
/// run must end exactly as a single-process run with the same --batch.
/// </summary>
public class ClusterTests : TorchGuarded
{
    static readonly string Text = string.Concat(Enumerable.Range(0, 60).Select(i => $" = Section {i} = \n \n The {i} quick brown foxes jump over {i * 7} lazy dogs . \n"));

    /// <summary>A child process of the prunerzero binary with its output collected line by line.</summary>
    sealed class Proc : IDisposable
    {
        readonly Process _p;
        readonly StringBuilder _out = new();
        readonly List<string> _lines = [];

        public Proc(params string[] args)
        {
            var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "prunerzero.dll"));
            foreach (var a in args) psi.ArgumentList.Add(a);
            _p = new Process { StartInfo = psi };
            _p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_out) _out.AppendLine(e.Data); };
            _p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_lines) _lines.Add(e.Data); };
            _p.Start();
            _p.BeginOutputReadLine();
            _p.BeginErrorReadLine();
        }

        public string Out { get { lock (_out) return _out.ToString(); } }
        public List<string> Err { get { lock (_lines) return [.. _lines]; } }
        public string ErrText => string.Join("\n", Err.Where(l => !l.Contains("window")));

        public void WaitFor(Func<List<string>, bool> cond, string what, int seconds = 60)
        {
            var sw = Stopwatch.StartNew();
            while (!cond(Err))
            {
                if (_p.HasExited) throw new Xunit.Sdk.XunitException($"process exited ({_p.ExitCode}) before {what}:\n{ErrText}");
                if (sw.Elapsed.TotalSeconds > seconds) throw new Xunit.Sdk.XunitException($"timed out waiting for {what}:\n{ErrText}");
                Thread.Sleep(50);
            }
        }

        public int Exit(int seconds)
        {
            if (!_p.WaitForExit(seconds * 1000)) throw new Xunit.Sdk.XunitException($"still running after {seconds} s:\n{ErrText}");
            _p.WaitForExit();
            return _p.ExitCode;
        }

        /// <summary>SIGKILL on Linux: no shutdown code runs.</summary>
        public void Kill9() => _p.Kill(entireProcessTree: true);

        public void Dispose()
        {
            try { if (!_p.HasExited) _p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            _p.Dispose();
        }
    }

    /// <summary>`search --cluster` takes no --cache (each worker keeps its own G cache; refused otherwise).</summary>
    static string[] WithoutCache(string[] args)
    {
        var l = args.ToList();
        int i = l.IndexOf("--cache");
        if (i >= 0) l.RemoveRange(i, 2);
        return [.. l];
    }

    static int FreeBase() => 43000 + 20 * Random.Shared.Next(0, 400);

    [Fact]
    public void TwoWorkersOneKilledGiveTheSingleProcessResultAndADifferentModelIsRefused()
    {
        string model = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 17);
        string other = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 18);
        string dir = TestCheckpoints.TempDir("cluster");
        string wiki = Path.Combine(dir, "wiki.test.raw");
        File.WriteAllText(wiki, Text);
        string calib = Path.Combine(dir, "calib.txt");
        File.WriteAllText(calib, Text.Replace("quick", "slow"));
        string[] data = ["--dataset", wiki, "--calib", calib, "--cache", Path.Combine(dir, "cache"), "--nsamples", "2", "--seqlen", "32",
                         "--calib-sampling", "stride", "--screen-windows", "2"];
        string[] search = [.. data, "--model", model, "--population", "4", "--iterations", "8", "--report-top", "2", "--seed", "3", "--batch", "2"];

        string single = Path.Combine(dir, "single");
        var (exit, singleOut, err) = CliRunner.Run(["search", .. search, "--run", single]);
        Assert.True(exit == 0, err);

        string cluster = $"localhost:{FreeBase()}";
        using var w1 = new Proc(["worker", "--cluster", cluster, "--name", "w1", "--model", model, .. data]);
        w1.WaitFor(l => l.Any(x => x.Contains("worker w1: ready")), "worker w1 ready");
        // One after another: a localhost worker takes the first free port slot when it starts.
        using var w2 = new Proc(["worker", "--cluster", cluster, "--name", "w2", "--model", model, .. data]);
        w2.WaitFor(l => l.Any(x => x.Contains("worker w2: joined")), "worker w2 joined");
        using var w3 = new Proc(["worker", "--cluster", cluster, "--name", "w3", "--model", other, .. data]);
        w2.WaitFor(l => l.Any(x => x.Contains("worker w2: ready")), "worker w2 ready");
        w3.WaitFor(l => l.Any(x => x.Contains("worker w3: ready")), "worker w3 ready");

        string run = Path.Combine(dir, "cluster");
        using var s = new Proc(["search", .. WithoutCache(search), "--run", run, "--cluster", cluster, "--wait", "60"]);
        // Kill w2 with -9 as it starts its second candidate.
        w2.WaitFor(l => l.Count(x => x.StartsWith("worker w2: screen")) >= 2, "w2's second evaluation", 90);
        w2.Kill9();
        int code = s.Exit(100);
        Assert.True(code == 0, s.ErrText);

        var lines = s.Err;
        var refused = lines.Single(l => l.Contains("refusing worker w3"));
        Assert.StartsWith("cluster: refusing worker w3: its protocol differs (model_sha256:", refused);
        Assert.Contains(lines, l => l.Contains("lost worker w2") || l.Contains("worker w2 left the cluster"));

        // Same results and history as one process with the same batch; nothing lost, nothing counted twice.
        // (The last two columns, same_mask and cut, count mask-fingerprint copies, made by a single process only, whose
        // coordinator has the model (the cluster's does not load it, so its count is 0), and the screens stopped early,
        // which a copy of a stopped screen counts too.)
        static IEnumerable<string> History(string dir) => File.ReadAllLines(Path.Combine(dir, "history.csv")).Select(l => l[..l.LastIndexOf(',', l.LastIndexOf(',') - 1)]);
        Assert.Equal(History(single), History(run));
        Assert.Equal(File.ReadAllText(Path.Combine(single, "best.txt")), File.ReadAllText(Path.Combine(run, "best.txt")));
        static string Table(string stdout) => string.Join("\n", stdout.Split('\n').SkipWhile(l => !l.StartsWith("rank")).TakeWhile(l => !l.StartsWith("workers:") && !l.StartsWith("db:") && !l.StartsWith("evaluations ")));
        Assert.Equal(Table(singleOut), Table(s.Out));
        static string Count(string stdout) => stdout.Split('\n').Single(l => l.StartsWith("evaluations ")).Split(' ')[1];
        Assert.Equal(Count(singleOut), Count(s.Out));   // the same candidates; the single process screened fewer (same mask)
        // subject (quoted when it holds commas), kind, worker
        var workers = File.ReadAllLines(Path.Combine(run, "workers.csv")).Skip(1).Select(l =>
        {
            int k = l.LastIndexOf(','), j = l.LastIndexOf(',', k - 1);
            return new[] { l[..j], l[(j + 1)..k], l[(k + 1)..] };
        }).ToList();
        Assert.DoesNotContain(workers, w => w[^1] == "w3");
        Assert.Contains(workers, w => w[^1] == "w1");
        // One row per evaluation made: 10+ screens, 2 leaders' full checks, 3 baselines x (screen, full).
        var evals = File.ReadAllLines(Path.Combine(single, "history.csv")).Last().Split(',')[4];
        Assert.Equal(int.Parse(evals) + 2 + 6, workers.Count);
        Assert.Equal(workers.Count, workers.Select(w => (w[0], w[1])).Distinct().Count());
    }

    [Fact]
    public void AnUnreachableClusterFailsInOneLineWithinTheWait()
    {
        string model = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 17);
        string dir = TestCheckpoints.TempDir("cluster-none");
        string wiki = Path.Combine(dir, "wiki.test.raw");
        File.WriteAllText(wiki, Text);
        var sw = Stopwatch.StartNew();
        using var s = new Proc("search", "--model", model, "--dataset", wiki, "--calib", wiki, "--run", Path.Combine(dir, "run"),
                               "--cluster", $"localhost:{FreeBase()}", "--wait", "3", "--batch", "2");
        int code = s.Exit(60);
        Assert.Equal(1, code);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(45), $"took {sw.Elapsed}");
        var err = s.Err;
        Assert.Single(err, l => l.StartsWith("error:"));
        Assert.StartsWith("error: no worker reachable at localhost:", err[^1]);
        Assert.False(Directory.Exists(Path.Combine(dir, "run")));
    }
}
