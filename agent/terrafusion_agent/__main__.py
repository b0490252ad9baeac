from terrafusion_agent.cli import main

raise SystemExit(main())
