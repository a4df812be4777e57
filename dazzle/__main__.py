from dazzle.cli import main

raise SystemExit(main())
