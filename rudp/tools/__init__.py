"""Users of the layers above: simulator, pcap writer, lossy relay, TUN bridge,
command line. Never imported by rudp.core."""
