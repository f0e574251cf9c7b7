set encoding utf8
set terminal pngcairo noenhanced size 1024,640
set output 'tradeoff.png'
set title 'ImageNet images.tar: accuracy vs compute, within 2 points of the final head (650 images)'
set xlabel 'compute saving (%)'
set ylabel 'accuracy (%)'
set grid
set key outside right top box
set offsets graph 0.03, graph 0.03, graph 0.06, graph 0.03
set offsets graph 0.03, graph 0.03, 0, 0
set yrange [75.38461538461539:77.88461538461539]
set xrange [-12.856064509513507:9.015660201787941]
plot 'tradeoff.dat' index 0 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'max_prob', \
     '' index 1 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'entropy', \
     '' index 2 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'margin', \
     '' index 3 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'patience', \
     '' index 4 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'static frontier (every family)', \
     '' index 5 every ::0::0 using 1:2 with points pointtype 7 pointsize 1.5 linecolor rgb 'black' title 'full', \
     '' index 5 every ::1::1 using 1:2 with points pointtype 5 pointsize 1.5 linecolor rgb 'black' title 'oracle', \
     '' index 5 every ::2::2 using 1:2 with points pointtype 9 pointsize 1.5 linecolor rgb 'black' title 'max_prob_calibrated', \
     '' index 5 every ::3::3 using 1:2 with points pointtype 11 pointsize 1.5 linecolor rgb 'black' title 'entropy_calibrated', \
     '' index 5 every ::4::4 using 1:2 with points pointtype 13 pointsize 1.5 linecolor rgb 'black' title 'margin_calibrated', \
     '' index 5 every ::5::5 using 1:2 with points pointtype 6 pointsize 1.5 linecolor rgb 'black' title 'patience_calibrated', \
     '' index 5 every ::6::6 using 1:2 with points pointtype 4 pointsize 1.5 linecolor rgb 'black' title 'fixed_calibrated', \
     '' index 5 every ::7::7 using 1:2 with points pointtype 8 pointsize 1.5 linecolor rgb 'black' title 'dee', \
     '' index 5 every ::8::8 using 1:2 with points pointtype 10 pointsize 1.5 linecolor rgb 'black' title 'dee_online', \
     '' index 5 every ::9::9 using 1:2 with points pointtype 12 pointsize 1.5 linecolor rgb 'black' title 'ucb_exit', \
     '' index 5 every ::10::10 using 1:2 with points pointtype 1 pointsize 1.5 linecolor rgb 'black' title 'epsilon_greedy', \
     '' index 5 every ::11::11 using 1:2 with points pointtype 2 pointsize 1.5 linecolor rgb 'black' title 'check_every_head', \
     '' index 5 every ::12::12 using 1:2 with points pointtype 3 pointsize 1.5 linecolor rgb 'black' title 'predictive'
