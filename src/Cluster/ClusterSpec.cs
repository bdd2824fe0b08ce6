// --cluster SPEC:
//   localhost[:PORT]            one machine, Orleans' localhost (development) clustering. Worker slot i
//                               (0..MaxLocalWorkers-1) listens on silo port PORT+2i and gateway port PORT+2i+1;
//                               a worker takes the first free slot. Slot 0 is the primary silo, which holds
//                               the membership table: start it first, and it must stay up (use Redis to survive
//                               the loss of any worker). PORT defaults to 11111.
//   redis://HOST:PORT[/NAME]    any number of machines: membership in Redis (Microsoft.Orleans.Clustering.Redis);
//                               NAME (default prunerzero) separates clusters sharing one Redis. Workers listen on
//                               free ports and advertise --advertise ADDRESS (default: this host's first
//                               non-loopback IPv4 address).
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Orleans.Hosting;
using StackExchange.Redis;

namespace PrunerZero.Cluster;

public sealed class ClusterSpecException(string message) : UserError(message);

public sealed record ClusterSpec(string Text, bool IsLocalhost, int BasePort, string? RedisEndpoint, string ClusterId)
{
    public const int DefaultPort = 11111;
    public const int MaxLocalWorkers = 8;
    const string ServiceId = "prunerzero";

    public static ClusterSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim();
        if (t == "localhost") return new(t, true, DefaultPort, null, "prunerzero");
        if (t.StartsWith("localhost:", StringComparison.Ordinal))
        {
            if (!int.TryParse(t["localhost:".Length..], out int port) || port < 1 || port + 2 * MaxLocalWorkers > 65535)
                throw new ClusterSpecException($"{UserError.P("cluster")} {text}: the port after localhost: must be a number in 1..{65535 - 2 * MaxLocalWorkers}");
            return new(t, true, port, null, "prunerzero");
        }
        if (t.StartsWith("redis://", StringComparison.Ordinal))
        {
            var rest = t["redis://".Length..];
            string name = "prunerzero";
            int slash = rest.IndexOf('/');
            if (slash >= 0) { name = rest[(slash + 1)..]; rest = rest[..slash]; }
            if (rest.Length == 0 || name.Length == 0 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
                throw new ClusterSpecException($"{UserError.P("cluster")} {text}: expected redis://HOST:PORT[/NAME] (NAME: letters, digits, - and _)");
            CheckHostPort(text, rest);
            return new(t, false, 0, rest, name);
        }
        throw new ClusterSpecException($"{UserError.P("cluster")} {text}: expected localhost, localhost:PORT or redis://HOST:PORT[/NAME]");
    }

    /// <summary>HOST:PORT of a redis SPEC: a host name or address (IPv6 in brackets) and a port in 1..65535, checked here, not at the first connection.</summary>
    static void CheckHostPort(string text, string hostPort)
    {
        int colon = hostPort.LastIndexOf(':');
        string host = colon < 0 ? hostPort : hostPort[..colon];
        string port = colon < 0 ? "" : hostPort[(colon + 1)..];
        if (colon < 0 || port.Length == 0)
            throw new ClusterSpecException($"{UserError.P("cluster")} {text}: no port; expected redis://HOST:PORT[/NAME]");
        if (!port.All(char.IsAsciiDigit) || !int.TryParse(port, out int p) || p < 1 || p > 65535)
            throw new ClusterSpecException($"{UserError.P("cluster")} {text}: the port '{port}' is not a number in 1..65535; expected redis://HOST:PORT[/NAME]");
        bool bracketed = host.StartsWith('[') && host.EndsWith(']') && host.Length > 2 && IPAddress.TryParse(host[1..^1], out _);
        bool name = host.Length > 0 && host.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_');
        if (!bracketed && !name)
            throw new ClusterSpecException($"{UserError.P("cluster")} {text}: the host '{host}' is not a host name or address (an IPv6 address goes in brackets: [::1]:6379)");
    }

    /// <summary>Gateway ports a client tries on this machine (localhost clustering).</summary>
    public int[] LocalGatewayPorts => [.. Enumerable.Range(0, MaxLocalWorkers).Select(i => BasePort + 2 * i + 1)];

    /// <summary>Configures a worker silo; returns a description of where it listens.</summary>
    public string ConfigureSilo(ISiloBuilder silo, string? advertise)
    {
        if (IsLocalhost)
        {
            int slot = FreeLocalSlot();
            int siloPort = BasePort + 2 * slot, gatewayPort = siloPort + 1;
            silo.UseLocalhostClustering(siloPort, gatewayPort, new IPEndPoint(IPAddress.Loopback, BasePort), ServiceId, ClusterId);
            return $"slot {slot}{(slot == 0 ? " (primary)" : "")}, silo port {siloPort}, gateway port {gatewayPort}";
        }
        var ip = advertise is null ? DefaultAddress() : ParseAddress(advertise);
        int sp = FreePort(), gp = FreePort();
        silo.Configure<ClusterOptions>(o => { o.ClusterId = ClusterId; o.ServiceId = ServiceId; });
        silo.ConfigureEndpoints(ip, sp, gp, listenOnAnyHostAddress: true);
        silo.UseRedisClustering(o => o.ConfigurationOptions = RedisOptions());
        return $"{ip}, silo port {sp}, gateway port {gp}, membership {Text}";
    }

    public void ConfigureClient(IClientBuilder client)
    {
        if (IsLocalhost)
        {
            client.UseLocalhostClustering(LocalGatewayPorts, ServiceId, ClusterId);
            return;
        }
        client.Configure<ClusterOptions>(o => { o.ClusterId = ClusterId; o.ServiceId = ServiceId; });
        client.UseRedisClustering(o => o.ConfigurationOptions = RedisOptions());
    }

    ConfigurationOptions RedisOptions()
    {
        var o = ConfigurationOptions.Parse(RedisEndpoint!);
        o.AbortOnConnectFail = false;
        o.ConnectTimeout = 3000;
        return o;
    }

    int FreeLocalSlot()
    {
        for (int i = 0; i < MaxLocalWorkers; i++)
            if (PortFree(BasePort + 2 * i) && PortFree(BasePort + 2 * i + 1)) return i;
        throw new ClusterSpecException($"{UserError.P("cluster")} {Text}: all {MaxLocalWorkers} worker slots on this machine are taken (ports {BasePort}..{BasePort + 2 * MaxLocalWorkers - 1})");
    }

    static bool PortFree(int port)
    {
        try
        {
            var l = new TcpListener(IPAddress.Any, port);
            l.Start();
            l.Stop();
            return true;
        }
        catch (SocketException) { return false; }
    }

    static int FreePort()
    {
        var l = new TcpListener(IPAddress.Any, 0);
        l.Start();
        int p = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }

    static IPAddress ParseAddress(string s) => IPAddress.TryParse(s, out var ip) ? ip
        : throw new ClusterSpecException($"{UserError.P("advertise")} {s}: not an IP address");

    static IPAddress DefaultAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses).Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
        ?? IPAddress.Loopback;

    public override string ToString() => Text;
}
