using CommandLine;
using PrunerZero.Cluster;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Search;

namespace PrunerZero.Cli;

[Verb("worker", HelpText = "Serve search evaluations as a member (Orleans silo) of a cluster; one worker per device.")]
public sealed class WorkerOptions : PruningSetupOptions
{
    [Option("cluster", Required = true, HelpText = "localhost[:PORT] (one machine; start the first worker first) or redis://HOST:PORT[/NAME].")]
    public string Cluster { get; set; } = "";

    [Option("screen-windows", Default = Defaults.ScreenWindows, HelpText = "Windows of the fast fitness; must match the search's.")]
    public int ScreenWindows { get; set; }

    [Option("name", HelpText = "Name in progress lines and reports (default: HOST:SILO-PORT).")]
    public string? Name { get; set; }

    [Option("advertise", HelpText = "With redis: the IP address other machines reach this worker at (default: the first non-loopback IPv4 address).")]
    public string? Advertise { get; set; }
}

/// <summary>What the worker verb and `search --cluster` share: the cluster SPEC and the protocol both sides compute the same way.</summary>
public static class ClusterWiring
{
    public static ClusterSpec Spec(string text)
    {
        try { return ClusterSpec.Parse(text); }
        catch (ClusterSpecException e) { throw new PrunerZeroException(e.Message); }
    }

    /// <summary>Content hashes of model, data and calibration, and every setting that changes a fitness value.</summary>
    public static string Protocol(PruningSetupOptions o, int screenWindows)
    {
        var s = o.Session();
        if (!Directory.Exists(s.ModelDir)) throw new PrunerZeroException($"--model {s.ModelDir}: no such folder");
        if (!File.Exists(s.EvalPath)) throw new PrunerZeroException($"--dataset {s.EvalPath}: no such file");
        if (!File.Exists(s.CalibPath)) throw new PrunerZeroException($"--calib {s.CalibPath}: no such file");
        if (screenWindows < 1) throw new PrunerZeroException($"--screen-windows must be at least 1, got {screenWindows}");
        return ProtocolId.Describe(s.ModelDir, s.EvalPath, s.CalibPath,
        [
            ("nsamples", s.NSamples.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("seqlen", s.Seqlen?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "model"),
            ("calib_sampling", s.Sampling.ToString().ToLowerInvariant()),
            ("calib_seed", s.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("target", o.Target().ToString()),
            ("screen_windows", screenWindows.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("pruning", "one-shot(dense X, G)"),
        ]);
    }

    /// <summary>What `search --cluster` connects with: the cluster, the protocol the workers must match, the batch and the wait.</summary>
    public static ClusterFitnessOptions SearchPlan(SearchOptionsCli o)
    {
        var spec = Spec(o.Cluster!);
        if (o.Wait < 1) throw new PrunerZeroException($"--wait must be at least 1 second, got {o.Wait}");
        return new ClusterFitnessOptions { Spec = spec, Protocol = Protocol(o, o.ScreenWindows), Batch = o.Batch, Wait = TimeSpan.FromSeconds(o.Wait) };
    }

    public static ClusterFitness ConnectSearch(SearchOptionsCli o, TextWriter log, CancellationToken ct)
    {
        var plan = SearchPlan(o);
        log.WriteLine($"cluster: joining {plan.Spec} as a client; protocol {plan.Protocol}");
        try
        {
            return ClusterFitness.Connect(plan, log, ct);
        }
        catch (ClusterUnavailableException e) { throw new PrunerZeroException(e.Message); }
    }
}

public static class WorkerCommand
{
    /// <summary>Everything a worker serves with, from its options (every option of the verb reaches it).</summary>
    public sealed record WorkerPlan(ClusterSpec Spec, string? Name, string? Advertise, string Protocol, string Device,
        SessionOptions Session, PruneTarget Target, int ScreenWindows);

    public static WorkerPlan Plan(WorkerOptions o)
    {
        var spec = ClusterWiring.Spec(o.Cluster);
        if (o.Advertise != null && !System.Net.IPAddress.TryParse(o.Advertise, out _))
            throw new PrunerZeroException($"--advertise {o.Advertise}: not an IP address");
        var target = o.Target();
        o.Sampling();
        CliPaths.Cache(CliPaths.Pruning(o), o);
        if (o.ScreenWindows < 1) throw new PrunerZeroException($"--screen-windows must be at least 1, got {o.ScreenWindows}");
        o.Preflight(target);   // counts, seqlen and the model's config, before hashing and joining
        return new WorkerPlan(spec, o.Name, o.Advertise, ClusterWiring.Protocol(o, o.ScreenWindows), o.Device.ToLowerInvariant(),
            o.Session() with { EvalWindows = null }, target, o.ScreenWindows);
    }

    public static int Run(WorkerOptions o)
    {
        var plan = Plan(o);
        var (spec, target, options, protocol) = (plan.Spec, plan.Target, plan.Session, plan.Protocol);
        var progress = new ProgressLine();
        var log = new ProgressAwareWriter(progress, Console.Error);
        using var backend = o.Backend();   // a CUDA request without a GPU fails here, before joining
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        // A plain `kill` (SIGTERM) leaves the cluster as Ctrl-C does; without this the silo keeps the process alive.
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
            System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; cts.Cancel(); });
        PruneSession? session = null;
        try
        {
            WorkerHost.RunAsync(spec, plan.Name, plan.Advertise, protocol, plan.Device, () =>
            {
                session = new PruneSession(options, log, progress);
                _ = session.DenseStats;   // X and G once, before the first job
                _ = session.Gradients;
                progress.Done();
                return new PruningFitness(session, target, backend, plan.ScreenWindows);
            }, log, cts.Token).GetAwaiter().GetResult();
        }
        catch (ClusterSpecException e) { throw new PrunerZeroException(e.Message); }
        finally { session?.Dispose(); }
        return 0;
    }
}
