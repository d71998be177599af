from compose_net.cli import main

raise SystemExit(main())
