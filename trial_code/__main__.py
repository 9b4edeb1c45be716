from nni_nasext.trial_code.run import main

raise SystemExit(main())
