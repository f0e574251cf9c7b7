set encoding utf8
set terminal pngcairo noenhanced size 1024,640
set output 'exits.png'
set title 'exits per head'
set xlabel 'exit head (the last is the final head)'
set ylabel 'fraction of samples'
set yrange [0:1.05]
set grid ytics
set key outside right top
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
plot 'exits.dat' using 2:xtic(1) title 'full', \
     '' using 3 title 'oracle', \
     '' using 4 title 'max_prob_calibrated', \
     '' using 5 title 'entropy_calibrated', \
     '' using 6 title 'margin_calibrated', \
     '' using 7 title 'patience_calibrated', \
     '' using 8 title 'fixed_calibrated', \
     '' using 9 title 'dee', \
     '' using 10 title 'dee_online', \
     '' using 11 title 'ucb_exit', \
     '' using 12 title 'epsilon_greedy', \
     '' using 13 title 'check_every_head', \
     '' using 14 title 'predictive'
